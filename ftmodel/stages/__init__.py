"""The pipeline's stages, one module each; every module offers `CONTRACT`, `preflight(ctx)` and `run(ctx)`.

`CONTRACT` (a `ftmodel.contracts.StageContract`) says what the stage reads, consumes and writes;
`preflight` checks what can be checked before anything loads; `run` does the work. Only the
launcher's job table (`ftmodel.launcher.job_modules`) imports these modules (an import-linter
contract holds it); everything else asks it. Stage modules import only the stdlib and light ftmodel
modules at import time (the ML stack is imported inside `run`), so the CLI and the console can run
`preflight` in well under a second.
"""

from ftmodel.words import PIPELINE, STAGES  # noqa: F401 - the old home of these words
