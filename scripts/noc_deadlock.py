#!/usr/bin/env python3
"""Check that the mesh NoC cannot deadlock: build the channel dependency graph (CDG) from the
routing function and look for a cycle (Dally & Seitz: a wormhole network whose CDG is acyclic is
deadlock-free).

Channels are the router output links (including the ejection links to cores and to the host)
plus one injection channel per node. For every (source, destination) pair, including the host,
the route is walked with the routing function and every pair of consecutive channels becomes an
edge "holding channel a, waits for channel b".

With both message classes (the default), the graph holds the request network and the response
network, plus the protocol dependency of a core that must inject a READ_RESP on the response
network before it can accept the next request: request ejection at core c -> response injection
at core c. Responses are sunk unconditionally (host and cores), so nothing depends on a response
ejection. ``--shared`` puts both classes on one network instead, which is cyclic: this is why the
NoC has two physical networks.

Multicast (``--multicast vct``, the default with XY routing): every multicast packet for every
rectangle from every source (cores and host) on the request network follows the XY tree of
:func:`hasp.hw.noc.mc_route` in the multicast lanes of the lane router (channels ``mc:...``;
the ejection channels are shared with unicast). The lane router allocates a multicast head only
when the whole packet is in its lane and every branch's lane is empty and free, and then serves
it with priority (virtual cut-through), so a multicast packet holding a channel waits only for
the channels of its children: edges parent -> child. ``--multicast sync`` models replication
without that rule (a branch that has taken flits waits for its blocked siblings: edges between
siblings), which is cyclic. ``--multicast none`` leaves multicast out.

Virtual channels (``--vcs V``, the VC router ``noc.router = "vc"``): every router-to-router
link becomes ``V`` channels (its virtual channels, ``...#v``); a packet holding any VC of a
link may wait for any VC of the next link (the router takes any free downstream VC, and a VC
is held from head to tail), so every edge ``a -> b`` becomes edges from every VC of ``a`` to
every VC of ``b``. The injection and ejection channels stay single. Multicast is left out
(the VC router has none). With XY routing the graph stays acyclic: a cycle of VCs would
project onto a cycle of links.

The XY routing also has its turns (unicast and multicast) checked against
:func:`hasp.hw.noc.router_turns`, the table the hardware crossbar is built from.

Usage::

    python scripts/noc_deadlock.py                 # 2x2 3x3 4x4, XY, two networks
    python scripts/noc_deadlock.py 8x8 3x5         # ROWSxCOLS
    python scripts/noc_deadlock.py --routing mixed 2x2   # a bad routing: exits 1
    python scripts/noc_deadlock.py --shared 2x2          # one shared network: exits 1
    python scripts/noc_deadlock.py --multicast sync 3x3  # replication without VCT: exits 1
    python scripts/noc_deadlock.py --vcs 4 4x4           # the VC router, 4 VCs per link

Exit status: 0 acyclic, 1 a cycle was found (printed), 2 bad arguments, 3 the XY turns used do
not match ``router_turns`` or a route leaves the mesh / does not terminate.
"""
from __future__ import annotations

import argparse
import sys

from hasp.hw.noc import Port, mc_route, router_turns, xy_route

HOST = "host"
STEP = {Port.N: (0, -1), Port.S: (0, 1), Port.E: (1, 0), Port.W: (-1, 0)}
OPPOSITE = {Port.N: Port.S, Port.S: Port.N, Port.E: Port.W, Port.W: Port.E, Port.L: Port.L}


def route_xy(rows, cols, x, y, src, dst):
    """The hardware routing function (:func:`hasp.hw.noc.xy_route`)."""
    if dst == HOST:
        return xy_route(x, y, 0, 0, True)
    return xy_route(x, y, dst[0], dst[1], False)


def route_yx(rows, cols, x, y, src, dst):
    """Dimension-ordered YX routing (also deadlock-free; host reached via (0, 0) West)."""
    tx, ty = (0, 0) if dst == HOST else dst
    if ty > y:
        return Port.S
    if ty < y:
        return Port.N
    if tx > x:
        return Port.E
    if tx < x:
        return Port.W
    return Port.W if dst == HOST else Port.L


def route_mixed(rows, cols, x, y, src, dst):
    """A deliberately bad routing: XY for sources with even x + y (and the host), YX for odd
    ones. Together they make all eight turns, so the CDG has a cycle around every square."""
    odd = src != HOST and (src[0] + src[1]) % 2 == 1
    return (route_yx if odd else route_xy)(rows, cols, x, y, src, dst)


ROUTINGS = {"xy": route_xy, "yx": route_yx, "mixed": route_mixed}


def nodes(rows, cols):
    return [(x, y) for y in range(rows) for x in range(cols)] + [HOST]


def walk(rows, cols, route, src, dst):
    """Channels used by a packet from ``src`` to ``dst``, in order, and the turns it makes.

    A channel is ``("inj", node)`` or ``("out", (x, y), Port)``. A turn is
    ``((x, y), in Port, out Port)``. Raises ``RuntimeError`` if the route leaves the mesh or
    does not terminate.
    """
    if src == HOST:
        (x, y), came = (0, 0), Port.W
    else:
        (x, y), came = src, Port.L
    chans, turns = [("inj", src)], []
    for _ in range(4 * rows * cols + 4):
        out = route(rows, cols, x, y, src, dst)
        chans.append(("out", (x, y), out))
        turns.append(((x, y), came, out))
        if out == Port.L:
            if dst != (x, y):
                raise RuntimeError(f"{src}->{dst}: ejected at {(x, y)}")
            return chans, turns
        if out == Port.W and (x, y) == (0, 0):
            if dst != HOST:
                raise RuntimeError(f"{src}->{dst}: sent to the host port")
            return chans, turns
        dx, dy = STEP[out]
        x, y = x + dx, y + dy
        if not (0 <= x < cols and 0 <= y < rows):
            raise RuntimeError(f"{src}->{dst}: left the mesh at {(x - dx, y - dy)} port {out.name}")
        came = OPPOSITE[out]
    raise RuntimeError(f"{src}->{dst}: route does not terminate")


def rectangles(rows, cols):
    """Every multicast rectangle ``(x0, y0, x1, y1)`` of the mesh (1 x 1 ones are unicast)."""
    return [(x0, y0, x1, y1) for y0 in range(rows) for y1 in range(y0, rows)
            for x0 in range(cols) for x1 in range(x0, cols) if (x0, y0) != (x1, y1)]


def mc_walk(rows, cols, src, rect, sync=False):
    """Dependency edges and turns of the multicast tree from ``src`` to ``rect``.

    Channels are ``("mc", (x, y), Port)`` (the multicast lane behind output ``Port`` of router
    ``(x, y)``), the shared ejection channels ``("out", (x, y), Port.L)`` and the injection
    channel ``("inj", src)``. Raises ``RuntimeError`` if the tree leaves the mesh, has a dead end
    or does not deliver exactly once to every core of the rectangle.
    """
    x0, y0, x1, y1 = rect
    start = ((0, 0), Port.W) if src == HOST else (src, Port.L)
    stack = [(start[0], start[1], ("inj", src))]
    edges, turns, got = [], [], []
    while stack:
        (x, y), came, parent = stack.pop()
        outs = sorted(mc_route(x, y, came, x0, y0, x1, y1))
        if not outs:
            raise RuntimeError(f"multicast {src}->{rect}: dead end at {(x, y)}")
        children = []
        for o in outs:
            turns.append(((x, y), came, o))
            if o == Port.L:
                child = ("out", (x, y), Port.L)
                got.append((x, y))
            else:
                nx, ny = x + STEP[o][0], y + STEP[o][1]
                if not (0 <= nx < cols and 0 <= ny < rows):
                    raise RuntimeError(f"multicast {src}->{rect}: left the mesh at {(x, y)}")
                child = ("mc", (x, y), o)
                stack.append(((nx, ny), OPPOSITE[o], child))
            children.append(child)
            edges.append((parent, child))
        if sync:
            edges += [(a, b) for a in children for b in children if a != b]
    want = sorted((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1))
    if sorted(got) != want:
        raise RuntimeError(f"multicast {src}->{rect}: delivered to {sorted(got)}")
    return edges, turns


def build_cdg(rows, cols, route, *, shared=False, multicast="none"):
    """Channel dependency graph of both message classes: ``{channel: set(channel)}`` where a
    channel is ``(net, chan)``; also returns the turns used (per class). ``multicast``:
    ``"vct"``, ``"sync"`` or ``"none"`` (multicast trees on the request network)."""
    graph, used = {}, set()
    nets = ("req", "resp")
    for net in nets:
        tag = "net" if shared else net
        for src in nodes(rows, cols):
            for dst in nodes(rows, cols):
                # every pair in both classes: a superset of the real traffic
                chans, turns = walk(rows, cols, route, src, dst)
                used.update(turns)
                for a, b in zip(chans, chans[1:]):
                    graph.setdefault((tag, a), set()).add((tag, b))
                    graph.setdefault((tag, b), set())
    req, resp = ("net", "net") if shared else nets
    if multicast != "none":
        for src in nodes(rows, cols):
            for rect in rectangles(rows, cols):
                edges, turns = mc_walk(rows, cols, src, rect, sync=multicast == "sync")
                used.update(turns)
                for a, b in edges:
                    graph.setdefault((req, a), set()).add((req, b))
                    graph.setdefault((req, b), set())
    for core in nodes(rows, cols):
        if core == HOST:
            continue
        eject = (req, ("out", core, Port.L))
        inject = (resp, ("inj", core))
        graph.setdefault(eject, set()).add(inject)
        graph.setdefault(inject, set())
    return graph, used


def expand_vcs(graph, vcs):
    """The CDG with every router-to-router link split into ``vcs`` virtual channels, any VC of
    a link depending on any VC of the next (see the module docstring)."""
    def split(c):
        net, ch = c
        if ch[0] == "out" and ch[2] != Port.L and not (ch[1] == (0, 0) and ch[2] == Port.W):
            return [(net, ch + (v,)) for v in range(vcs)]
        return [c]
    out = {}
    for a, succ in graph.items():
        for va in split(a):
            out.setdefault(va, set())
            for b in succ:
                out[va].update(split(b))
    for succ in list(out.values()):
        for b in succ:
            out.setdefault(b, set())
    return out


def find_cycle(graph):
    """A list of channels forming a cycle, or ``None``. Iterative DFS."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for root in graph:
        if color[root] != WHITE:
            continue
        stack = [(root, iter(sorted(graph[root], key=repr)))]
        color[root] = GREY
        path = [root]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if color[nxt] == GREY:
                    return path[path.index(nxt):] + [nxt]
                if color[nxt] == WHITE:
                    color[nxt] = GREY
                    stack.append((nxt, iter(sorted(graph[nxt], key=repr))))
                    path.append(nxt)
                    break
            else:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None


def check_turns(rows, cols, used):
    """Compare the turns XY routing uses with :func:`router_turns`; return mismatch strings."""
    errors = []
    for y in range(rows):
        for x in range(cols):
            table = router_turns(x, y, rows, cols, host=(x, y) == (0, 0))
            have = {(i, o) for o, ins in table.items() for i in ins}
            need = {(i, o) for (pos, i, o) in used if pos == (x, y)}
            if need - have:
                errors.append(f"router {(x, y)}: turns used but not built: "
                              f"{sorted((i.name, o.name) for i, o in need - have)}")
            if have - need:
                errors.append(f"router {(x, y)}: turns built but never used: "
                              f"{sorted((i.name, o.name) for i, o in have - need)}")
    return errors


def fmt_chan(c):
    net, ch = c
    if ch[0] == "inj":
        return f"{net}:inject@{ch[1]}"
    if ch[0] == "mc":
        return f"{net}:mc:{ch[1]}.{ch[2].name}"
    vc = f"#{ch[3]}" if len(ch) > 3 else ""
    return f"{net}:{ch[1]}.{ch[2].name}{vc}"


def check(rows, cols, routing="xy", shared=False, out=sys.stdout, multicast=None, vcs=1):
    """Check one mesh; return the exit status (0, 1 or 3). ``multicast`` defaults to
    ``"vct"`` for XY routing with one channel per link and ``"none"`` otherwise; ``vcs``:
    virtual channels per router-to-router link (the VC router)."""
    if multicast is None:
        multicast = "vct" if routing == "xy" and vcs == 1 else "none"
    try:
        graph, used = build_cdg(rows, cols, ROUTINGS[routing], shared=shared,
                                multicast=multicast)
    except RuntimeError as e:
        print(f"{rows}x{cols} {routing}: routing error: {e}", file=out)
        return 3
    if routing == "xy":
        errors = check_turns(rows, cols, used)
        if errors:
            for e in errors[:10]:
                print(f"{rows}x{cols}: {e}", file=out)
            if len(errors) > 10:
                print(f"{rows}x{cols}: ... {len(errors) - 10} more", file=out)
            return 3
    if vcs > 1:
        graph = expand_vcs(graph, vcs)
    edges = sum(len(v) for v in graph.values())
    what = "one shared network" if shared else "request + response networks"
    if vcs > 1:
        what += f", {vcs} VCs per link"
    if multicast != "none":
        what += f", multicast {multicast}"
    cycle = find_cycle(graph)
    if cycle:
        print(f"{rows}x{cols} {routing} ({what}): CYCLE of {len(cycle) - 1} channels: "
              + " -> ".join(fmt_chan(c) for c in cycle), file=out)
        return 1
    print(f"{rows}x{cols} {routing} ({what}): {len(graph)} channels, {edges} dependencies, "
          f"acyclic", file=out)
    return 0


def parse_mesh(text):
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"mesh must be ROWSxCOLS, not {text!r}") from None
    if not (1 <= rows <= 64 and 1 <= cols <= 64):
        raise argparse.ArgumentTypeError(f"mesh {text!r} out of range 1..64")
    return rows, cols


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("meshes", nargs="*", type=parse_mesh, metavar="ROWSxCOLS",
                    default=[(2, 2), (3, 3), (4, 4)])
    ap.add_argument("--routing", choices=sorted(ROUTINGS), default="xy")
    ap.add_argument("--shared", action="store_true",
                    help="requests and responses share one network (expected to be cyclic)")
    ap.add_argument("--multicast", choices=("vct", "sync", "none"), default=None,
                    help="multicast trees on the request network (default: vct with XY "
                         "routing, none otherwise)")
    ap.add_argument("--vcs", type=int, default=1,
                    help="virtual channels per router-to-router link (the VC router; "
                         "default 1)")
    args = ap.parse_args(argv)
    if args.multicast not in (None, "none") and args.routing != "xy":
        ap.error("multicast trees follow XY routing: use --routing xy")
    if not 1 <= args.vcs <= 16:
        ap.error(f"--vcs must be in 1..16, not {args.vcs}")
    if args.vcs > 1 and args.multicast not in (None, "none"):
        ap.error("the VC router has no multicast: leave --multicast out with --vcs")
    status = 0
    for rows, cols in args.meshes:
        status = max(status, check(rows, cols, args.routing, args.shared,
                                   multicast=args.multicast, vcs=args.vcs))
    return status


if __name__ == "__main__":
    sys.exit(main())
