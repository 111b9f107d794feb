"""Your workflows: the App the deployed functions load (`STEPLINE_APP=workflows:app`).

`sam build` packages this folder with the engine. To add a workflow, write it in a
module here, register it on `app` (see `hello.py`) and import the module below. To
deploy the examples instead, set the stack's StepLineApp parameter to `examples:app`;
to keep your workflows elsewhere, point StepLineApp at your own `module:attribute`
(the module must be inside the folder `sam build` packages).
"""

from workflows import hello  # noqa: F401  (registers its workflow on app)
from workflows.app import app

__all__ = ["app"]
