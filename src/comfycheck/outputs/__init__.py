"""What a run leaves behind: the HTML report's parts, the history row, Prometheus, versions."""
