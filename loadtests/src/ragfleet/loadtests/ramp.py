"""Pass after the main locustfile (``-f locustfile.py,ramp.py``) to drive the run with the step ramp.

Kept apart because Locust uses any shape class a locustfile defines: importing it into
locustfile.py would turn every run into a ramp.
"""

from ragfleet.loadtests.shapes import StepRampShape

__all__ = ["StepRampShape"]
