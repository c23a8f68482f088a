"""The load run (loadtests/locustfile.py drives it): runner, samples, judge, report, and the Locust command line.

Nothing here imports Locust, so pytest reads and embeds a run's results with the same code."""
