"""Signal generators: factor frames in, contract-shaped signal frames out.

See :func:`research.signals.registry.build_generator` for config-driven use and
:mod:`research.signals.positions` for position <-> action conversion.
"""

from research.signals.frame import SIGNAL_COLUMNS, signal_frame
from research.signals.positions import positions_to_actions
from research.signals.registry import GENERATORS, build_generator, register_generator

__all__ = ["GENERATORS", "SIGNAL_COLUMNS", "build_generator",
           "positions_to_actions", "register_generator", "signal_frame"]
