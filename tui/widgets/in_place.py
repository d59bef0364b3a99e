"""Updating a Static without laying out the screen when its height stays the same.

A layout of the run screen costs tens of milliseconds on the console's thread, holding the GIL the
trainer needs; a Static whose new text wraps to as many lines as before needs only a repaint.
"""

from __future__ import annotations

from textual.css.scalar import Unit
from textual.visual import VisualType
from textual.widgets import Static


def update_in_place(static: Static, content: VisualType) -> None:
    static.update(content, layout=False)
    width = static.content_size.width
    if not width:  # not laid out yet: the coming layout sizes it
        return
    height = static.get_content_height(static.content_size, static.app.size, width)
    cap = static.styles.max_height
    if cap is not None and cap.unit == Unit.CELLS:
        height = min(height, int(cap.value))
    if height != static.content_size.height:
        static.refresh(layout=True)
