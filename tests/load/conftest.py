"""The load and class runs need Locust and matplotlib: without comfycheck's [load] extra they skip, saying so."""
from __future__ import annotations

import pytest

from comfycheck.extras import lacking

if why := lacking("load", "the load and class runs"):
    pytest.skip(why, allow_module_level=True)
