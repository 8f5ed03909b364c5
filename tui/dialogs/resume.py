"""The confirm dialog of a resume: where the checkpoint continues (step, learning rate, data position),
what changed in the config since, and what refuses it — the facts `ftmodel <stage> --resume` prints."""

from __future__ import annotations

from ftmodel.i18n import t
from tui.dialogs.text import TextScreen


def resume_question(facts) -> tuple[str, bool] | tuple[None, bool]:
    """The dialog's question and whether a yes means `--force` (None: refused, nothing to ask)."""
    if facts.refusal(force=False) is None:
        return t("Resume {run} from {checkpoint}?", run=facts.run_id, checkpoint=facts.checkpoint.name), False
    if facts.refusal(force=True) is None:
        return t("Continue on the new data anyway (--force)?"), True
    return None, False


class ResumeScreen(TextScreen):
    """The facts of a resume with its question (`y` resumes; refused: the reason and no question)."""

    def __init__(self, facts):
        question, self.force = resume_question(facts)
        lines = list(facts.lines())
        refusal = facts.refusal(force=False)
        if refusal:
            lines += ["", refusal]
        super().__init__(t("resume {run}", run=facts.run_id), "\n".join(lines), question)
