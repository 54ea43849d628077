"""Group-sync unit (GSU): the hardware barrier of the HASP execution model.

Cores are partitioned (or overlapped) into programmable **sync groups**; a group's phases end at
a barrier that completes when every member has arrived, and groups advance independently of
each other. The BSP baseline is the special case "one group = all cores", which is also the
reset state (group 0 = every core). Super-groups are barriers over a set of groups (a level of
the core -> group -> super-group -> chip hierarchy). See ``docs/sync.md`` for the protocol,
timing diagrams and the cost of this central structure as the mesh grows.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from .checks import check_int as _check_int

__all__ = ["GroupSyncUnit", "barrier_id_width", "COUNTER_WIDTH", "MAX_CORES", "MAX_GROUPS"]

#: Width of the per-barrier phase and wait counters (wrap around).
COUNTER_WIDTH = 32
#: Largest mesh the configuration allows (64 x 64).
MAX_CORES = 4096
#: Largest number of groups (``SyncConfig.groups``) and of super-groups.
MAX_GROUPS = 64


def barrier_id_width(groups: int, supergroups: int = 0) -> int:
    """Width of a barrier id (``arrive_group``, ``cfg_group``): ids ``0 .. groups - 1`` name
    groups, ``groups .. groups + supergroups - 1`` name super-groups. At least 1 bit."""
    return max(1, (groups + supergroups - 1).bit_length())


def _sum_tree(vals):
    """Balanced adder tree over a list of values (a popcount for 1-bit values)."""
    vals = list(vals)
    if not vals:
        return Const(0, 1)
    while len(vals) > 1:
        nxt = [vals[k] + vals[k + 1] for k in range(0, len(vals) - 1, 2)]
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
    return vals[0]


class GroupSyncUnit(wiring.Component):
    """Central barrier unit for ``cores`` cores, ``groups`` sync groups and ``supergroups``
    super-groups.

    A **barrier id** ``b`` names group ``b`` (``b < groups``) or super-group ``b - groups``.
    Each group has a member mask (``cores`` bits); each super-group has a group mask
    (``groups`` bits) and its members are the union of the members of those groups. Every
    barrier (group or super-group) has a phase budget, a phase counter, a wait counter and an
    overrun flag. A core may be a member of several groups; at each SYNC it names the barrier
    it waits on with ``arrive_group``.

    **Handshake.** Core ``i`` raises ``arrive[i]`` (level) with ``arrive_group[i] = b`` and
    holds both until it sees ``release[i]``, a one-cycle pulse. In the cycle ``release[i]`` is
    high, ``arrive[i]`` and ``arrive_group[i]`` are ignored (the core may keep them up while it
    leaves the SYNC, or drop them); from the next cycle on, a high ``arrive[i]`` is the core's
    next arrival. A core is *waiting* on ``b`` in a cycle when ``arrive[i]`` is high,
    ``release[i]`` is low and ``arrive_group[i] == b``.

    **Completion and latency.** Barrier ``b`` is complete when its member set is non-empty and
    every member is waiting on ``b``; it *fires* when complete and (fixed-length mode) its
    budget has expired. All members' ``release`` bits are high together ``L = latency`` cycles
    after the cycle in which the last member's ``arrive`` is first high: with ``latency = 1``
    the completion (id decode, AND over the members, release OR) is one combinational path
    between registers; ``latency = 2`` registers partial ANDs over chunks of 16 cores and the
    per-core waiting state in between, and decides in cycle ``t`` on the snapshot of cycle
    ``t - 1`` (a barrier that fired in ``t - 1`` cannot fire again in ``t``). A core that enters
    its next SYNC at once is released every ``L + 1`` cycles.

    **Phase modes.** ``budget[b] = 0`` is adaptive: fire as soon as complete. ``budget[b] = B
    > 0`` is fixed-length: release ``r_k`` of phase ``k`` is ``r_k = max(r_{k-1} + B,
    a_k + L)`` with ``a_k`` the last arrival - exactly ``B`` cycles after the previous release
    when every member arrives by ``r_{k-1} + B - L`` (members arriving earlier wait). Otherwise
    the sticky ``overrun[b]`` rises in cycle ``r_{k-1} + B`` (the cycle the release was due;
    it is set again in every later cycle of the late phase, so a clear during the phase does
    not hide it), and the barrier releases ``L`` cycles after the last arrival; the next budget
    counts from that late release (the schedule slips, it does not catch up). The first barrier
    after a configuration write of ``b`` is always adaptive: it aligns the members, and there
    is no previous release to count from. After the members' last phase the schedule keeps
    running, so a program that leaves a fixed-length group rewrites it (e.g. budget 0) before
    the next expiry, or the expiry is reported as an overrun. ``B <= L`` can never be met
    (``overrun`` is flagged every phase); ``B = L + 1`` is met by zero-work phases.

    **Errors.** A core waiting on a barrier it is not a member of (this includes an empty group,
    a super-group with no member groups, and an id ``>= groups + supergroups``) sets its sticky
    ``error[i]`` in the next cycle and is **held**, never released, so that it cannot run past a
    barrier that did not happen; the chip stops it and reports to the host. Other cores and
    barriers are unaffected. If the host rewrites the barrier so that the core becomes a member,
    the held core takes part in the barrier normally. ``error`` stays set until
    ``clear_flags`` (a chip top pulses it when it restarts cores, or a restarted core would
    see the old error).

    **Configuration.** ``cfg_we`` writes the whole configuration of barrier ``cfg_group`` at the
    clock edge: ``mask <= cfg_mask`` and ``budget <= cfg_budget`` for a group,
    ``gmask <= cfg_gmask`` and ``budget <= cfg_budget`` for a super-group; the barrier is
    disarmed (its next barrier is adaptive). Writes to ids ``>= groups + supergroups`` are
    ignored. A group's new configuration is used from the next cycle, even by members already
    waiting; super-group member sets are registered and follow group and ``gmask`` writes one
    cycle later (the host configures, then starts the cores). Reset: group 0 = all cores (BSP),
    every other group and super-group empty, budgets 0.

    Parameters
    ----------
    cores : int
        Number of cores, 1..4096.
    groups : int
        Number of sync groups, 1..64 (``SyncConfig.groups``).
    supergroups : int
        Number of super-groups, 0..64. Default 0.
    budget_width : int
        Width of the phase budgets and of the budget timers, 1..32. Default 24.
    latency : int
        Cycles from the last arrival to the release, 1 or 2. Default 2 (the pipelined form,
        for clock rates above ~100 MHz on an FPGA; see ``docs/sync.md``).

    Ports
    -----
    Below, ``GW = barrier_id_width(groups, supergroups)`` and ``NB = groups + supergroups``.
    Every output is a register or a wire from registers (no combinational input-to-output
    path). Cycle ``t`` is the clock period after edge ``t``; "visible in cycle ``t``" means the
    register took the value at edge ``t``.

    arrive : ``In(cores)``
        ``arrive[i]``: core ``i`` waits at a SYNC (level, held until ``release[i]``).
    arrive_group : ``In(GW).array(cores)``
        ``arrive_group[i]``: the barrier id core ``i`` waits on; sampled while ``arrive[i]``.
    release : ``Out(cores)``
        ``release[i]``: one-cycle pulse, registered; the barrier core ``i`` waits on completed.
        All members of a barrier are released in the same cycle, ``latency`` cycles after the
        last member's ``arrive`` rose.
    error : ``Out(cores)``
        ``error[i]``: sticky, registered; core ``i`` waited on a barrier it is not a member of
        (and is held there). Set in the cycle after the bad arrival.
    cfg_we : ``In(1)``
        Configuration write strobe (one barrier per cycle).
    cfg_group : ``In(GW)``
        Barrier id written.
    cfg_mask : ``In(cores)``
        New member mask of a group (bit ``i`` = core ``i``).
    cfg_gmask : ``In(groups)``
        New group mask of a super-group (bit ``g`` = group ``g``). Only when ``supergroups > 0``.
    cfg_budget : ``In(budget_width)``
        New phase budget in cycles (0 = adaptive).
    mask : ``Out(cores).array(groups)``
        Member mask of each group (registers; the value written appears the cycle after
        ``cfg_we``).
    gmask : ``Out(groups).array(supergroups)``
        Group mask of each super-group. Only when ``supergroups > 0``.
    budget : ``Out(budget_width).array(NB)``
        Phase budget of each barrier.
    phases : ``Out(32).array(NB)``
        Barriers completed since reset or ``clear_counters``; the increment is visible in the
        same cycle as the release pulse. Wraps around.
    wait_cycles : ``Out(32).array(NB)``
        Member-cycles spent waiting: each cycle adds the number of members waiting on the
        barrier (a member released in cycle ``r`` that arrived in cycle ``a`` adds ``r - a``;
        the release cycle is not counted). The waits of cycle ``t`` are visible in cycle
        ``t + 2``. Wraps around.
    overrun : ``Out(NB)``
        Sticky, registered: a fixed-length phase of the barrier missed its budget; rises in the
        cycle the release was due.
    clear_counters : ``In(1)``
        Synchronous clear of ``phases`` and ``wait_cycles`` in cycle ``t``: both read 0 in
        ``t + 1``; ``wait_cycles`` then counts the waits of cycles ``t`` on, ``phases`` the
        releases decided after ``t`` (the release visible in ``t + 1`` is not counted).
    clear_flags : ``In(1)``
        Synchronous clear of ``error`` and ``overrun``; a flag whose condition holds in the same
        cycle stays set (never silent).
    """

    #: Cores per partial AND registered between the two stages (``latency = 2``).
    CHUNK = 16

    def __init__(self, cores, groups, *, supergroups=0, budget_width=24, latency=2):
        _check_int("cores", cores, 1, MAX_CORES)
        _check_int("groups", groups, 1, MAX_GROUPS)
        _check_int("supergroups", supergroups, 0, MAX_GROUPS)
        _check_int("budget_width", budget_width, 1, 32)
        _check_int("latency", latency, 1, 2)
        self.latency = latency
        self.cores, self.groups, self.supergroups = cores, groups, supergroups
        self.barriers = groups + supergroups
        self.budget_width = budget_width
        self.id_width = gw = barrier_id_width(groups, supergroups)
        sig = {
            "arrive": In(cores),
            "arrive_group": In(gw).array(cores),
            "release": Out(cores),
            "error": Out(cores),
            "cfg_we": In(1),
            "cfg_group": In(gw),
            "cfg_mask": In(cores),
        }
        if supergroups:
            sig["cfg_gmask"] = In(groups)
        sig["cfg_budget"] = In(budget_width)
        sig["mask"] = Out(cores).array(groups)
        if supergroups:
            sig["gmask"] = Out(groups).array(supergroups)
        sig.update({
            "budget": Out(budget_width).array(self.barriers),
            "phases": Out(COUNTER_WIDTH).array(self.barriers),
            "wait_cycles": Out(COUNTER_WIDTH).array(self.barriers),
            "overrun": Out(self.barriers),
            "clear_counters": In(1),
            "clear_flags": In(1),
        })
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        N, G, S, NB, bw = self.cores, self.groups, self.supergroups, self.barriers, self.budget_width
        all_ones = (1 << N) - 1

        # Configuration registers.
        mask = [Signal(N, name=f"mask_{g}", init=all_ones if g == 0 else 0) for g in range(G)]
        gmask = [Signal(G, name=f"gmask_{s}") for s in range(S)]
        budget = [Signal(bw, name=f"budget_{b}") for b in range(NB)]
        for g in range(G):
            m.d.comb += self.mask[g].eq(mask[g])
        for s in range(S):
            m.d.comb += self.gmask[s].eq(gmask[s])
        for b in range(NB):
            m.d.comb += self.budget[b].eq(budget[b])

        # Member set of every barrier; a super-group's is registered (one cycle behind writes).
        members = list(mask)
        for s in range(S):
            eff = Signal(N, name=f"smembers_{s}")
            acc = Const(0, N)
            for g in range(G):
                acc = acc | Mux(gmask[s][g], mask[g], 0)
            m.d.sync += eff.eq(acc)
            members.append(eff)

        # Stage 1. act: arriving and not in the release cycle; waiting[b]: cores waiting on b
        # (members or not); mwait[b]: members waiting on b.
        act = Signal(N, name="act")
        m.d.comb += act.eq(self.arrive & ~self.release)
        waiting, mwait = [], []
        for b in range(NB):
            w = Signal(N, name=f"waiting_{b}")
            m.d.comb += w.eq(Cat(act[i] & (self.arrive_group[i] == b) for i in range(N)))
            mw = Signal(N, name=f"mwait_{b}")
            m.d.comb += mw.eq(w & members[b])
            waiting.append(w)
            mwait.append(mw)
        good = Signal(N, name="good")
        acc = Const(0, N)
        for b in range(NB):
            acc = acc | mwait[b]
        m.d.comb += good.eq(acc)
        bad = Signal(N, name="bad")
        m.d.comb += bad.eq(act & ~good)
        # ready[b][c]: every member among cores [c*CHUNK, (c+1)*CHUNK) waits on b
        chunks = [(lo, min(lo + self.CHUNK, N)) for lo in range(0, N, self.CHUNK)]
        ready = []
        for b in range(NB):
            row = []
            for c, (lo, hi) in enumerate(chunks):
                r = Signal(name=f"ready_{b}_{c}")
                m.d.comb += r.eq((members[b][lo:hi] & ~waiting[b][lo:hi]) == 0)
                row.append(r)
            ready.append(row)
        nonempty = [Signal(name=f"nonempty_{b}") for b in range(NB)]
        for b in range(NB):
            m.d.comb += nonempty[b].eq(members[b] != 0)

        # Stage 2 (latency 2 only): the same, registered; decisions use last cycle's snapshot.
        fire = [Signal(name=f"fire_{b}") for b in range(NB)]
        complete = [Signal(name=f"complete_{b}") for b in range(NB)]
        if self.latency == 1:
            for b in range(NB):
                m.d.comb += complete[b].eq(nonempty[b] & Cat(ready[b]).all())
            rel_next = Const(0, N)
            for b in range(NB):
                rel_next = rel_next | Mux(fire[b], mwait[b], 0)
        else:
            good_q = Signal(N, name="good_q")
            gid_q = [Signal(self.id_width, name=f"gid_q_{i}") for i in range(N)]
            m.d.sync += good_q.eq(good)
            m.d.sync += [gid_q[i].eq(self.arrive_group[i]) for i in range(N)]
            for b in range(NB):
                ready_q = Signal(len(chunks), name=f"ready_q_{b}")
                nonempty_q = Signal(name=f"nonempty_q_{b}")
                fired_q = Signal(name=f"fired_q_{b}")    # its snapshot predates the release
                m.d.sync += [ready_q.eq(Cat(ready[b])), nonempty_q.eq(nonempty[b]),
                             fired_q.eq(fire[b])]
                m.d.comb += complete[b].eq(nonempty_q & ready_q.all() & ~fired_q)
            fire_vec = Cat(fire)
            rel_next = Signal(N, name="rel_next")
            m.d.comb += rel_next.eq(Cat(good_q[i] & fire_vec.bit_select(gid_q[i], 1)
                                        for i in range(N)))

        # Per barrier: budget timer, overrun flag, counters.
        for b in range(NB):
            # The timer holds B - 1 in the release cycle, counts down and stops at 0; a release
            # may be decided when it reads 0. Its zero test and the budget's 0 / 1 tests are
            # kept as registered flags, off the completion path.
            armed = Signal(name=f"armed_{b}")
            left = Signal(bw, name=f"left_{b}")
            left_zero = Signal(name=f"left_zero_{b}", init=1)
            budget_zero = Signal(name=f"budget_zero_{b}", init=1)
            budget_one = Signal(name=f"budget_one_{b}")
            adaptive = Signal(name=f"adaptive_{b}")
            m.d.comb += adaptive.eq(~armed | budget_zero)
            m.d.comb += fire[b].eq(complete[b] & (adaptive | left_zero))

            with m.If(self.cfg_we & (self.cfg_group == b)):
                m.d.sync += [armed.eq(0), budget[b].eq(self.cfg_budget),
                             budget_zero.eq(self.cfg_budget == 0),
                             budget_one.eq(self.cfg_budget == 1)]
                if b < G:
                    m.d.sync += mask[b].eq(self.cfg_mask)
                else:
                    m.d.sync += gmask[b - G].eq(self.cfg_gmask)
            with m.Elif(fire[b]):
                m.d.sync += [armed.eq(1), left.eq(budget[b] - 1), left_zero.eq(budget_one)]
            with m.Elif(~left_zero):
                m.d.sync += [left.eq(left - 1), left_zero.eq(left == 1)]

            missed = ~adaptive & left_zero & ~complete[b]
            with m.If(self.clear_flags):
                m.d.sync += self.overrun[b].eq(missed)
            with m.Elif(missed):
                m.d.sync += self.overrun[b].eq(1)

            # Waiting members are counted per 16-core chunk into registers, then accumulated.
            wcnt = []
            for c, (lo, hi) in enumerate(chunks):
                w = Signal(range(hi - lo + 1), name=f"wcnt_{b}_{c}")
                m.d.sync += w.eq(_sum_tree(mwait[b][i] for i in range(lo, hi)))
                wcnt.append(w)
            with m.If(self.clear_counters):
                m.d.sync += [self.phases[b].eq(0), self.wait_cycles[b].eq(0)]
            with m.Else():
                m.d.sync += self.wait_cycles[b].eq(self.wait_cycles[b] + _sum_tree(wcnt))
                with m.If(fire[b]):
                    m.d.sync += self.phases[b].eq(self.phases[b] + 1)

        m.d.sync += self.release.eq(rel_next)
        with m.If(self.clear_flags):
            m.d.sync += self.error.eq(bad)
        with m.Else():
            m.d.sync += self.error.eq(self.error | bad)
        return m
