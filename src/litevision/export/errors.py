"""Export failures. Unlike :class:`~litevision.errors.UserError` these say the *model* cannot be exported
as asked (custom operators, outputs that disagree with eager PyTorch); the CLI exits with code 1."""


from typing import Any


class ExportError(RuntimeError):
    """The export ran but its result is not deployable: non-standard operators or a parity mismatch.

    ``result`` is the :class:`~litevision.export.ExportResult` with the checks that failed, when there is one."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
