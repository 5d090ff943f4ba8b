"""The Packet tab: a title, the field tree and the hex dump of one packet of the flow.

It owns which packet is shown. ``[``/``]`` step through every packet of the flow in
capture order (the timeline's frames), not only the packets that carried the client
address; each one is read and dissected by a worker the first time it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from pcapip.tui.detail import FlowDetail, PacketView, dissect
from pcapip.tui.widgets.packet import HexView, PacketTree

#: a stop that is not a frame: the PROXY header reassembled from several segments
REASSEMBLED = -1


@dataclass
class PacketShown(Message):
    """The pane now shows frame ``number`` (None: the reassembled stream start)."""

    number: int | None


@dataclass
class PacketRead(Message):
    view: PacketView
    generation: int


def stops_for(det: FlowDetail) -> list[int]:
    """Frame numbers to step through: every timeline frame, and the reassembled header
    right after the last frame it was reassembled from."""
    frames = [e.frame for e in det.timeline]
    numbered = [p.number for p in det.packets if p.number is not None]
    for n in numbered:
        if n not in frames:
            frames.append(n)
    frames.sort()
    if any(p.number is None for p in det.packets):
        at = frames.index(max(numbered)) + 1 if numbered else len(frames)
        frames.insert(at, REASSEMBLED)
    return frames


class PacketPane(Vertical):
    """Title, tree and hex of the packet at ``pos`` among the flow's stops."""

    #: index in ``stops`` of the packet shown; setting it shows that packet
    pos: reactive[int] = reactive(0, init=False, always_update=True)

    DEFAULT_CSS = """
    PacketPane { height: 1fr; }
    PacketPane #packet-title { height: 1; background: $panel; padding: 0 1; }
    PacketPane #packet-box { height: 1fr; layout: vertical; }
    PacketPane #tree { height: 1fr; min-height: 3; }
    PacketPane #hex-scroll { height: auto; max-height: 45%; min-height: 3;
                             width: 100%; background: $surface; }
    PacketPane.side-by-side #packet-box { layout: horizontal; }
    PacketPane.side-by-side #hex-scroll { width: auto; height: 1fr; max-height: 100%; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detail: FlowDetail | None = None
        self.source: Any = None  # the loader: .index, .registry, .udp_ports
        self.stops: list[int] = []
        self._views: dict[int, PacketView] = {}
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield Static("Select a flow (↑↓, Enter)", id="packet-title")
        with Container(id="packet-box"):
            yield PacketTree(id="tree")
            with VerticalScroll(id="hex-scroll"):
                yield HexView(id="hex")

    # ------------------------------------------------------------ what is shown
    def show_detail(self, det: FlowDetail | None, source: Any) -> None:
        """A new flow: start on the packet that carries its client address."""
        self._generation += 1
        self.detail, self.source = det, source
        self._views = {}
        self.stops = []
        pos = 0
        if det is not None:
            for p in det.packets:
                self._views[REASSEMBLED if p.number is None else p.number] = p
            self.stops = stops_for(det)
            if det.packets:
                first = det.packets[0].number
                pos = self.stops.index(REASSEMBLED if first is None else first)
        self.set_reactive(PacketPane.pos, pos)
        self._render_current()

    @property
    def current(self) -> PacketView | None:
        if not self.stops:
            return None
        return self._views.get(self.stops[self.pos])

    def step(self, delta: int) -> None:
        """Previous/next packet of the flow (stays at the first/last one)."""
        if self.stops:
            self.pos = max(0, min(len(self.stops) - 1, self.pos + delta))

    def show_frame(self, number: int) -> None:
        if number in self.stops:
            self.pos = self.stops.index(number)

    def watch_pos(self, pos: int) -> None:
        if not self.stops:
            return
        key = self.stops[pos]
        if key in self._views or self.source is None:
            self._render_current()
        else:
            self._title(Text(f"Frame {key} · reading…"))
            self._read(key, self._generation)

    @work(thread=True, exclusive=True, group="packet")
    def _read(self, number: int, generation: int) -> None:
        src = self.source
        frames = src.index.frames([number])
        if number in frames:
            view = dissect(frames[number], src.registry, f"Frame {number}", src.udp_ports)
            self.post_message(PacketRead(view, generation))

    def on_packet_read(self, msg: PacketRead) -> None:
        if msg.generation != self._generation:
            return  # another flow is shown since
        self._views[int(msg.view.number or 0)] = msg.view
        self._render_current()

    # ------------------------------------------------------------ drawing
    def _title(self, text: Text) -> None:
        self.query_one("#packet-title", Static).update(text)

    def _render_current(self) -> None:
        tree = self.query_one("#tree", PacketTree)
        hexv = self.query_one("#hex", HexView)
        det = self.detail
        pv = self.current
        if det is None or pv is None:
            if det is None:
                self._title(Text("No flow selected"))
            else:
                self._title(Text(flow_line(det.rec) + " · " + (det.note or "no packets")))
            tree.clear()
            hexv.show(b"")
            return
        self._title(Text(self._heading(det, pv)))
        mark = (pv.focus.offset, pv.focus.length) if pv.focus is not None else None
        hexv.show(pv.data, mark)
        tree.show(pv.layers, pv.focus)
        self.post_message(PacketShown(pv.number))

    def _heading(self, det: FlowDetail, pv: PacketView) -> str:
        """``Frame 9 [4/12] → ACK,PSH len 28 · carries the client address``: where in the
        flow first, so it survives a narrow terminal."""
        parts = pv.title.split(" · ", 1)
        head = parts[0]
        n = len(self.stops)
        if n > 1:
            more = "+" if det.timeline_total > len(det.timeline) else ""
            head += f" [{self.pos + 1}/{n}{more}]"
        entry = next((e for e in det.timeline if e.frame == pv.number), None)
        if entry is not None:
            head += f" {entry.direction} {entry.flags} len {entry.length}"
        if len(parts) > 1:
            head += f" · {parts[1]}"
        if det.note:
            head += f" · {det.note}"
        return head

    # ------------------------------------------------------------ tree → hex
    @on(PacketTree.NodeHighlighted, "#tree")
    def _field_highlighted(self, event: PacketTree.NodeHighlighted) -> None:
        data = event.node.data
        if data is None or not hasattr(data, "offset"):
            return
        self.query_one("#hex", HexView).set_mark((data.offset, data.length))
        self._scroll_hex_to(data.offset)

    def _scroll_hex_to(self, offset: int) -> None:
        sc = self.query_one("#hex-scroll", VerticalScroll)
        line = offset // 16

        def scroll() -> None:
            if not (sc.scroll_y <= line < sc.scroll_y + sc.size.height):
                sc.scroll_to(y=max(0, line - 1), animate=False)

        # after the refresh that lays out the bytes just shown: before it, the scroll view
        # does not know its new height yet and a scroll down would stop at the top
        sc.call_after_refresh(scroll)


def flow_line(rec: dict[str, Any]) -> str:
    """``Flow N: egress → origin``: the heading of a flow's detail."""
    from pcapip.tui.model import hostport

    flow = rec.get("flow")
    return (
        f"Flow {flow if flow is not None else '…'}: "
        f"{hostport(rec['egress_ip'], rec['egress_port'])} → "
        f"{hostport(rec['origin_ip'], rec['origin_port'])}"
    )
