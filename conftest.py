# Thin root conftest: everything lives in the comfycheck package's pytest plugin.
pytest_plugins = ["comfycheck.pytest_plugin"]
