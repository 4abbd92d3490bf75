"""Export failures. Unlike :class:`~litevision.errors.UserError` these say the *model* cannot be exported
as asked (custom operators, outputs that disagree with eager PyTorch); the CLI exits with code 1."""


class ExportError(RuntimeError):
    """The export ran but its result is not deployable: non-standard operators or a parity mismatch."""
