"""The run screen's log of events: a RichLog that lays the screen out only when its scrollbar comes
or goes.

RichLog.write sets virtual_size, a layout reactive, so every line laid out the whole run screen: tens
of milliseconds on the console's thread, holding the GIL the trainer needs between its ops. A new line
changes only the log's own scroll range, which the log can update itself.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog


class EventLog(RichLog):
    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        shown = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self._scroll_update(size)  # the scrollbars' range, as a layout would set it, and a repaint
        if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != shown:
            self.refresh(layout=True)  # a scrollbar came or went: the log's content region changed
