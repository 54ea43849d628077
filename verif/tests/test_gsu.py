"""Group-sync unit: constructor validation and Amaranth-simulator tests against a reference model.

The reference model (:func:`reference`) is event-level and written from the protocol in
``docs/sync.md``, not from the RTL: a barrier instance resolves when every member's current
phase names it; its release cycle is ``last arrival + L`` (``L`` = the unit's latency; adaptive,
or the first barrier after configuration) or ``max(last arrival + L, previous release + B)``
(budget ``B``), and a core whose phase ``k`` is released in cycle ``r`` starts phase ``k + 1``
in cycle ``r + 1``. Most tests run for both latencies (1 and 2).

The simulated cores (:func:`simulate`) run programs of ``(barrier id, work cycles)`` phases
cycle by cycle: work, then raise ``arrive`` until ``release``. In the release cycle they keep
``arrive`` up or drop it at random, with a random ``arrive_group``: the unit must ignore both.
"""
import random

import pytest

from hasp.hw.gen import port_list
from hasp.hw.gsu import GroupSyncUnit, barrier_id_width
from hasp.verif.amaranth_sim import run_sim


# ------------------------------------------------------------------------------------------
# Reference model

def members_of(cores, groups, cfg):
    """Member sets of every barrier after reset and the configuration writes ``cfg``."""
    masks = {0: (1 << cores) - 1}
    gmasks, budgets = {}, {}
    for w in cfg:
        b = w["b"]
        budgets[b] = w.get("budget", 0)
        if b < groups:
            masks[b] = w["mask"]
        else:
            gmasks[b] = w["gmask"]
    out = {}
    for b in set(masks) | set(gmasks):
        if b < groups:
            bits = masks[b]
        else:
            bits = 0
            for g in range(groups):
                if gmasks[b] >> g & 1:
                    bits |= masks.get(g, 0)
        out[b] = {i for i in range(cores) if bits >> i & 1}
    return out, budgets


def reference(programs, members, budgets, latency):
    """Event-level model. Returns release cycles per core, and per barrier: release cycles,
    wait member-cycles and the cycle the overrun flag rises (``None`` if never) in a run that
    ends the cycle after the last release."""
    n = len(programs)
    k = [0] * n
    start = [0] * n
    releases = {i: [] for i in range(n)}
    brel = {b: [] for b in members}
    wait = {b: 0 for b in members}
    overrun_at = {b: None for b in members}
    progress = True
    while progress:
        progress = False
        for b, mem in members.items():
            if not mem or not all(k[i] < len(programs[i]) and programs[i][k[i]][0] == b
                                  for i in mem):
                continue
            arrival = {i: start[i] + programs[i][k[i]][1] for i in mem}
            r = max(arrival.values()) + latency
            budget = budgets.get(b, 0)
            if budget and brel[b]:
                due = brel[b][-1] + budget
                if r > due and overrun_at[b] is None:
                    overrun_at[b] = due
                r = max(r, due)
            brel[b].append(r)
            for i in mem:
                wait[b] += r - arrival[i]
                releases[i].append(r)
                k[i] += 1
                start[i] = r + 1
            progress = True
    assert all(k[i] == len(programs[i]) for i in range(n)), "test programs deadlock"
    # A fixed-length barrier keeps its schedule after its members' last phase: the next expiry
    # within the observed run (which ends the cycle after the last release) is an overrun.
    end = max((r for rs in brel.values() for r in rs), default=-1) + 1
    for b, rs in brel.items():
        if budgets.get(b, 0) and rs and overrun_at[b] is None and rs[-1] + budgets[b] <= end:
            overrun_at[b] = rs[-1] + budgets[b]
    return {"releases": releases, "brel": brel, "wait": wait, "overrun_at": overrun_at}


# ------------------------------------------------------------------------------------------
# Simulation harness

async def configure(ctx, dut, cfg, settle=True):
    """Write ``cfg``, one barrier per cycle; then (``settle``) one idle cycle, as the host does
    before starting the cores (super-group member sets follow writes one cycle later)."""
    for w in cfg:
        ctx.set(dut.cfg_we, 1)
        ctx.set(dut.cfg_group, w["b"])
        ctx.set(dut.cfg_mask, w.get("mask", 0))
        ctx.set(dut.cfg_budget, w.get("budget", 0))
        if dut.supergroups:
            ctx.set(dut.cfg_gmask, w.get("gmask", 0))
        await ctx.tick()
    ctx.set(dut.cfg_we, 0)
    if cfg and settle:
        await ctx.tick()


def simulate(dut, programs, cfg=(), seed=0, sample_at=(), max_cycles=3000, clear_flags=False):
    """Configure, then run the core programs from cycle 0 until every core is done.

    Returns every observed release cycle per core, the cycle each ``overrun`` bit first read
    high, ``phases`` sampled at the cycles in ``sample_at``, the final counters and the cycle
    count."""
    n, nb = dut.cores, dut.barriers
    rng = random.Random(seed)
    res = {"releases": {i: [] for i in range(n)}, "overrun_at": {}, "samples": {}}

    async def tb(ctx):
        await configure(ctx, dut, cfg)
        ctx.set(dut.clear_flags, clear_flags)
        k = [0] * n
        arrive_at = [programs[i][0][1] if programs[i] else None for i in range(n)]
        for c in range(max_cycles):
            rel = ctx.get(dut.release)
            ov = ctx.get(dut.overrun)
            for b in range(nb):
                if ov >> b & 1 and b not in res["overrun_at"]:
                    res["overrun_at"][b] = c
            if c in sample_at:
                res["samples"][c] = [ctx.get(dut.phases[b]) for b in range(nb)]
            arrive = 0
            for i in range(n):
                gid = rng.randrange(1 << dut.id_width)
                if rel >> i & 1:
                    res["releases"][i].append(c)
                    k[i] += 1
                    if k[i] < len(programs[i]):
                        arrive_at[i] = c + 1 + programs[i][k[i]][1]
                    if rng.random() < 0.5:
                        arrive |= 1 << i          # still up in the release cycle: ignored
                elif k[i] < len(programs[i]) and c >= arrive_at[i]:
                    arrive |= 1 << i
                    gid = programs[i][k[i]][0]
                ctx.set(dut.arrive_group[i], gid)
            ctx.set(dut.arrive, arrive)
            if all(k[i] == len(programs[i]) for i in range(n)) and rel == 0:
                break
            await ctx.tick()
        else:
            raise AssertionError(f"cores not done after {max_cycles} cycles: phases {k}")
        res["cycles"] = c
        res["phases"] = [ctx.get(dut.phases[b]) for b in range(nb)]
        res["wait"] = [ctx.get(dut.wait_cycles[b]) for b in range(nb)]
        res["error"] = ctx.get(dut.error)

    run_sim(dut, tb)
    return res


def check_against_reference(dut, programs, cfg, seed=0, sample_at=(), clear_flags=False):
    members, budgets = members_of(dut.cores, dut.groups, cfg)
    ref = reference(programs, members, budgets, dut.latency)
    got = simulate(dut, programs, cfg, seed=seed, sample_at=sample_at, clear_flags=clear_flags)
    assert got["releases"] == ref["releases"]
    assert got["error"] == 0
    for b in range(dut.barriers):
        assert got["phases"][b] == len(ref["brel"].get(b, [])), f"phases of barrier {b}"
        assert got["wait"][b] == ref["wait"].get(b, 0), f"wait_cycles of barrier {b}"
        assert got["overrun_at"].get(b) == ref["overrun_at"].get(b), f"overrun of barrier {b}"
    for c, phases in got["samples"].items():
        assert phases == [sum(r <= c for r in ref["brel"].get(b, [])) for b in range(dut.barriers)]
    return got, ref


# ------------------------------------------------------------------------------------------
# Constructor and ports

@pytest.mark.parametrize("args,kwargs,exc,words", [
    ((0, 4), {}, ValueError, r"cores must be in \[1, 4096\], not 0"),
    ((4097, 4), {}, ValueError, "cores must be in .*4097"),
    ((4.0, 4), {}, TypeError, "cores must be an integer, not 4.0"),
    ((True, 4), {}, TypeError, "cores must be an integer, not True"),
    ((4, 0), {}, ValueError, r"groups must be in \[1, 64\], not 0"),
    ((4, 65), {}, ValueError, "groups must be in .*65"),
    ((4, "4"), {}, TypeError, "groups must be an integer, not '4'"),
    ((4, 4), {"supergroups": -1}, ValueError, "supergroups must be in .*-1"),
    ((4, 4), {"budget_width": 0}, ValueError, "budget_width must be in .*0"),
    ((4, 4), {"budget_width": 33}, ValueError, "budget_width must be in .*33"),
    ((4, 4), {"latency": 0}, ValueError, r"latency must be in \[1, 2\], not 0"),
    ((4, 4), {"latency": 3}, ValueError, "latency must be in .*3"),
    ((4, 4), {"latency": 1.0}, TypeError, "latency must be an integer, not 1.0"),
])
def test_constructor_validates(args, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        GroupSyncUnit(*args, **kwargs)


def test_ports():
    assert [barrier_id_width(*a) for a in [(1,), (2,), (3,), (4,), (4, 1), (16,), (64, 64)]] == \
        [1, 1, 2, 2, 3, 4, 7]
    ports = {p["name"]: (p["direction"], p["width"]) for p in port_list(GroupSyncUnit(9, 4, supergroups=1))}
    assert ports["arrive"] == ("input", 9) and ports["arrive_group__8"] == ("input", 3)
    assert ports["release"] == ("output", 9) and ports["error"] == ("output", 9)
    assert ports["cfg_group"] == ("input", 3) and ports["cfg_mask"] == ("input", 9)
    assert ports["cfg_gmask"] == ("input", 4) and ports["cfg_budget"] == ("input", 24)
    assert ports["mask__3"] == ("output", 9) and ports["gmask__0"] == ("output", 4)
    assert ports["phases__4"] == ("output", 32) and ports["wait_cycles__4"] == ("output", 32)
    assert ports["budget__4"] == ("output", 24) and ports["overrun"] == ("output", 5)
    assert ports["clear_counters"] == ("input", 1) and ports["clear_flags"] == ("input", 1)
    plain = {p["name"] for p in port_list(GroupSyncUnit(4, 1, budget_width=8))}
    assert "cfg_gmask" not in plain and "gmask__0" not in plain and "phases__0" in plain


def test_reset_state_and_readback():
    dut = GroupSyncUnit(5, 3, supergroups=2, budget_width=10)

    async def tb(ctx):
        assert [ctx.get(dut.mask[g]) for g in range(3)] == [0b11111, 0, 0]   # BSP at reset
        assert [ctx.get(dut.gmask[s]) for s in range(2)] == [0, 0]
        assert [ctx.get(dut.budget[b]) for b in range(5)] == [0] * 5
        await configure(ctx, dut, [dict(b=1, mask=0b10110, budget=7),
                                   dict(b=4, gmask=0b101, budget=1023),
                                   dict(b=0, mask=0b00001, budget=0)])
        assert [ctx.get(dut.mask[g]) for g in range(3)] == [0b00001, 0b10110, 0]
        assert [ctx.get(dut.gmask[s]) for s in range(2)] == [0, 0b101]
        assert [ctx.get(dut.budget[b]) for b in range(5)] == [0, 7, 0, 0, 1023]
        # ids >= groups + supergroups are ignored
        await configure(ctx, dut, [dict(b=5, mask=0b11111, gmask=0b111, budget=3),
                                   dict(b=7, mask=0b11111, gmask=0b111, budget=3)])
        assert [ctx.get(dut.mask[g]) for g in range(3)] == [0b00001, 0b10110, 0]
        assert [ctx.get(dut.gmask[s]) for s in range(2)] == [0, 0b101]
        assert [ctx.get(dut.budget[b]) for b in range(5)] == [0, 7, 0, 0, 1023]

    run_sim(dut, tb)


# ------------------------------------------------------------------------------------------
# Barrier timing

LATENCIES = pytest.mark.parametrize("latency", [1, 2])


@LATENCIES
@pytest.mark.parametrize("cores,seed", [(1, 0), (5, 1), (16, 2), (37, 3)])
def test_release_exactly_after_last_arrival(cores, seed, latency):
    """Members arrive at scattered cycles; all are released together ``latency`` cycles after
    the last one arrives, never earlier, exactly once (arrive held through the release cycle
    does not re-trigger), and a member that re-arrives at once is released ``latency + 1``
    cycles after its previous release."""
    rng = random.Random(seed)
    mask = rng.randrange(1, 1 << cores) | 1
    mem = [i for i in range(cores) if mask >> i & 1]
    arrivals = {i: rng.randrange(0, 20) for i in mem}
    last = max(arrivals.values())
    dut = GroupSyncUnit(cores, 2, latency=latency)
    cfg = [dict(b=1, mask=mask)]
    programs = [[(1, arrivals[i]), (1, 0)] if i in mem else [] for i in range(cores)]
    got, ref = check_against_reference(dut, programs, cfg, seed=seed)
    r0 = last + latency
    for i in range(cores):
        assert got["releases"][i] == ([r0, r0 + 1 + latency] if i in mem else [])
    assert got["phases"] == [0, 2]


@LATENCIES
def test_every_core_can_be_last(latency):
    """40 cores in one group (more than two 16-core partial ANDs): in phase k core k arrives
    last, so a barrier that missed any core would release early."""
    n = 40
    programs = [[(0, 3 if k == i else 0) for k in range(n)] for i in range(n)]
    dut = GroupSyncUnit(n, 1, latency=latency)
    got, _ = check_against_reference(dut, programs, [], seed=latency)
    r = got["releases"][0]
    assert [b - a for a, b in zip(r, r[1:])] == [1 + 3 + latency] * (n - 1)


@LATENCIES
def test_groups_advance_independently_vs_bsp(latency):
    """Group A (cores 0-2) runs mostly short phases, group B (cores 3-5) mostly long ones, with
    the same 8-phase programs run once as two groups (HASP) and once as one group (BSP)."""
    rng = random.Random(7)
    base_a = [3, 3, 12, 3, 3, 3, 12, 3]       # A is longer than B in phases 2 and 6
    base_b = [10, 10, 4, 10, 10, 10, 4, 10]
    work = {i: [w + rng.randint(0, 2) for w in (base_a if i < 3 else base_b)] for i in range(6)}
    hasp_cfg = [dict(b=0, mask=0b000111), dict(b=1, mask=0b111000)]
    hasp_prog = [[(0 if i < 3 else 1, w) for w in work[i]] for i in range(6)]
    bsp_prog = [[(0, w) for w in work[i]] for i in range(6)]     # reset config: group 0 = all

    members, budgets = members_of(6, 2, hasp_cfg)
    ref = reference(hasp_prog, members, budgets, latency)
    a_done = ref["brel"][0][-1]
    m_phases = sum(r <= a_done for r in ref["brel"][1])
    bref = reference(bsp_prog, *members_of(6, 2, []), latency)
    # the scenario shows independence, and a BSP loss
    assert m_phases < 8 and bref["brel"][0][-1] > max(ref["brel"][0][-1], ref["brel"][1][-1])

    dut = GroupSyncUnit(6, 2, latency=latency)
    hasp, _ = check_against_reference(dut, hasp_prog, hasp_cfg, seed=1, sample_at={a_done})
    assert hasp["samples"][a_done] == [8, m_phases]       # A finished 8 phases, B only M

    dut = GroupSyncUnit(6, 2, latency=latency)
    bsp, bref = check_against_reference(dut, bsp_prog, [], seed=2)
    for k in range(8):                                      # lockstep
        assert len({bsp["releases"][i][k] for i in range(6)}) == 1
    assert bsp["phases"] == [8, 0]
    assert bsp["cycles"] > hasp["cycles"]                   # BSP takes longer overall
    assert bsp["releases"][0][-1] > hasp["releases"][0][-1] # and group A finishes much later
    assert bsp["wait"][0] > sum(hasp["wait"])


# ------------------------------------------------------------------------------------------
# Errors

@LATENCIES
def test_nonmember_arrival_is_flagged_and_held(latency):
    dut = GroupSyncUnit(4, 3, latency=latency)    # id width 2: id 3 does not exist
    L = latency

    async def tb(ctx):
        await configure(ctx, dut, [dict(b=0, mask=0b0011), dict(b=1, mask=0b0100)])
        rel, err = [], []

        async def step(arrive, groups, n=1):
            for _ in range(n):
                ctx.set(dut.arrive, arrive)
                for i, g in enumerate(groups):
                    ctx.set(dut.arrive_group[i], g)
                await ctx.tick()
                rel.append(ctx.get(dut.release))
                err.append(ctx.get(dut.error))

        await step(0b1000, [0, 0, 0, 0])              # core 3 waits on group 0: not a member
        assert (rel[-1], err[-1]) == (0, 0b1000)
        await step(0b1011, [0, 0, 0, 0], n=L)         # members 0, 1 arrive: group 0 fires
        assert rel[-L:] == [0] * (L - 1) + [0b0011]    # core 3 is not released
        assert err[-1] == 0b1000
        await step(0b1000, [0, 0, 0, 0])
        await step(0b1100, [0, 0, 2, 0])              # core 2 on empty group 2
        assert (rel[-1], err[-1]) == (0, 0b1100)
        await step(0b1110, [0, 3, 2, 0])              # core 1 on nonexistent barrier 3
        assert (rel[-1], err[-1]) == (0, 0b1110)
        await step(0b1110, [0, 3, 2, 0], n=10)        # held, never released, flag stays
        assert set(rel[-10:]) == {0} and set(err[-10:]) == {0b1110}
        await step(0, [0, 0, 0, 0], n=3)              # sticky after the cores give up
        assert set(err[-3:]) == {0b1110}
        ctx.set(dut.clear_flags, 1)
        await step(0b0100, [0, 0, 2, 0])              # condition present while clearing: stays
        ctx.set(dut.clear_flags, 0)
        assert err[-1] == 0b0100
        ctx.set(dut.clear_flags, 1)
        await step(0, [0, 0, 0, 0])
        ctx.set(dut.clear_flags, 0)
        assert err[-1] == 0

        # Repair: core 2 held on empty group 2; the host makes it a member, then it is released.
        await step(0b0100, [0, 0, 2, 0], n=3)
        assert set(rel[-3:]) == {0} and err[-1] == 0b0100
        ctx.set(dut.arrive, 0b0100)
        await configure(ctx, dut, [dict(b=2, mask=0b0100)], settle=False)  # used from next cycle
        assert ctx.get(dut.release) == 0
        await step(0b0100, [0, 0, 2, 0], n=L)
        assert rel[-L:] == [0] * (L - 1) + [0b0100] and err[-1] == 0b0100
        # counters see members only: cores 0, 1 waited L cycles each on group 0, core 2 L
        # cycles on group 2 once it became a member; the non-member waits are not counted
        await step(0, [0, 0, 0, 0], n=2)              # wait_cycles lags 2 cycles
        assert [ctx.get(dut.phases[b]) for b in range(3)] == [1, 0, 1]
        assert [ctx.get(dut.wait_cycles[b]) for b in range(3)] == [2 * L, 0, L]

    run_sim(dut, tb)


# ------------------------------------------------------------------------------------------
# Fixed-length phases

@LATENCIES
def test_fixed_budget_timing_and_overrun(latency):
    B, L = 12, latency
    rng = random.Random(3)
    # group 0 = cores 0, 1 with budget B; group 1 = cores 2, 3 adaptive. A phase that starts
    # in cycle r + 1 with ``tight`` work cycles arrives in r + B - L: exactly on budget.
    tight = B - 1 - L
    g0_work = [[5, 9], [3, tight], [0, tight], [4, 2], [25, 6], [1, tight], [7, 7]]
    programs = [[(0, w[c]) for w in g0_work] for c in (0, 1)]
    programs += [[(1, rng.randint(0, 9)) for _ in range(10)] for _ in (2, 3)]
    cfg = [dict(b=0, mask=0b0011, budget=B), dict(b=1, mask=0b1100, budget=0)]
    dut = GroupSyncUnit(4, 2, budget_width=8, latency=L)
    got, ref = check_against_reference(dut, programs, cfg, seed=4)
    r = got["releases"][0]
    # first barrier adaptive; phases 1-3 released exactly B after the previous release
    assert r[0] == max(g0_work[0]) + L
    assert [r[k] - r[k - 1] for k in (1, 2, 3)] == [B, B, B]
    # phase 4 overruns: flag rises when the release was due, release when the last arrives
    last_arrival = r[3] + 1 + 25
    assert got["overrun_at"] == {0: r[3] + B}
    assert r[4] == last_arrival + L > r[3] + B
    # the budget then counts from the late release
    assert [r[5] - r[4], r[6] - r[5]] == [B, B]
    assert got["wait"][0] == ref["wait"][0] > 0


@pytest.mark.parametrize("latency,budget,clear", [
    (1, 1, False), (1, 1, True), (1, 2, False), (1, 3, False),
    (2, 1, False), (2, 2, False), (2, 2, True), (2, 3, False), (2, 4, False)])
def test_smallest_budget(latency, budget, clear):
    """Zero-work phases: B <= latency can never be met (flagged, even while ``clear_flags`` is
    held high: a condition present in the clearing cycle wins), B > latency releases every B
    cycles."""
    overrun = budget <= latency
    dut = GroupSyncUnit(2, 1, budget_width=4, latency=latency)
    cfg = [dict(b=0, mask=0b11, budget=budget)]
    programs = [[(0, 0)] * 6] * 2
    got, ref = check_against_reference(dut, programs, cfg, seed=budget, clear_flags=clear)
    r = got["releases"][0]
    assert [b - a for a, b in zip(r, r[1:])] == [max(budget, latency + 1)] * 5
    assert (0 in got["overrun_at"]) == overrun


@LATENCIES
def test_late_member_beyond_timer_range(latency):
    """A member late by far more than 2**budget_width cycles is released on arrival."""
    dut = GroupSyncUnit(2, 1, budget_width=3, latency=latency)     # budgets up to 7
    cfg = [dict(b=0, mask=0b11, budget=5)]
    programs = [[(0, 0), (0, 2), (0, 40), (0, 1)], [(0, 2), (0, 1), (0, 0), (0, 2)]]
    got, ref = check_against_reference(dut, programs, cfg)
    r = got["releases"][0]
    assert r[1] - r[0] == 5 and r[2] == r[1] + 1 + 40 + latency and r[3] - r[2] == 5
    assert got["overrun_at"] == {0: r[1] + 5}


@LATENCIES
def test_config_write_restarts_schedule(latency):
    """Rewriting a fixed-length group disarms it: its next barrier is adaptive again."""
    dut = GroupSyncUnit(1, 1, budget_width=8, latency=latency)

    async def tb(ctx):
        cycle = 0

        async def arrive_until_release():
            nonlocal cycle
            ctx.set(dut.arrive, 1)
            while True:
                await ctx.tick()
                cycle += 1
                if ctx.get(dut.release):
                    ctx.set(dut.arrive, 0)
                    return cycle

        await configure(ctx, dut, [dict(b=0, mask=1, budget=10)], settle=False)
        ctx.set(dut.arrive_group[0], 0)
        r0 = await arrive_until_release()          # adaptive first barrier
        assert r0 == latency
        await ctx.tick()
        await configure(ctx, dut, [dict(b=0, mask=1, budget=10)], settle=False)
        cycle += 2
        r1 = await arrive_until_release()          # adaptive again, not r0 + 10
        assert r1 == r0 + 2 + latency
        await ctx.tick()
        cycle += 1
        r2 = await arrive_until_release()          # armed: exactly 10 after r1
        assert r2 == r1 + 10 and ctx.get(dut.overrun) == 0

    run_sim(dut, tb)


@LATENCIES
def test_counters_and_clears(latency):
    dut = GroupSyncUnit(3, 2, budget_width=6, latency=latency)
    cfg = [dict(b=0, mask=0b011, budget=4), dict(b=1, mask=0b100)]
    programs = [[(0, 1), (0, 6), (0, 1)], [(0, 2), (0, 0), (0, 2)], [(1, 3), (1, 0), (1, 5)]]
    members, budgets = members_of(3, 2, cfg)
    ref = reference(programs, members, budgets, latency)
    assert ref["overrun_at"][0] is not None

    async def tb(ctx):
        await configure(ctx, dut, cfg)
        k, t = [0, 0, 0], [programs[i][0][1] for i in range(3)]
        for c in range(200):
            rel = ctx.get(dut.release)
            arrive = 0
            for i in range(3):
                if rel >> i & 1:
                    k[i] += 1
                    t[i] = c + 1 + (programs[i][k[i]][1] if k[i] < 3 else 0)
                elif k[i] < 3 and c >= t[i]:
                    arrive |= 1 << i
                    ctx.set(dut.arrive_group[i], programs[i][k[i]][0])
            ctx.set(dut.arrive, arrive)
            if k == [3, 3, 3]:
                break
            await ctx.tick()
        await ctx.tick().repeat(2)            # the last waits reach wait_cycles 2 cycles late
        assert [ctx.get(dut.phases[b]) for b in (0, 1)] == [3, 3]
        assert [ctx.get(dut.wait_cycles[b]) for b in (0, 1)] == [ref["wait"][0], ref["wait"][1]]
        assert ctx.get(dut.overrun) == 0b01
        ctx.set(dut.clear_counters, 1)
        await ctx.tick()
        ctx.set(dut.clear_counters, 0)
        assert [ctx.get(dut.phases[b]) for b in (0, 1)] == [0, 0]
        assert [ctx.get(dut.wait_cycles[b]) for b in (0, 1)] == [0, 0]
        assert ctx.get(dut.overrun) == 0b01            # flags are not counters
        # group 0's schedule is still running after its last phase and keeps expiring: the
        # flag cannot be cleared until the group is rewritten (here: adaptive)
        ctx.set(dut.clear_flags, 1)
        await ctx.tick()
        assert ctx.get(dut.overrun) == 0b01
        ctx.set(dut.clear_flags, 0)
        await configure(ctx, dut, [dict(b=0, mask=0b011, budget=0)])
        ctx.set(dut.clear_flags, 1)
        await ctx.tick()
        ctx.set(dut.clear_flags, 0)
        assert ctx.get(dut.overrun) == 0
        # counting resumes after a clear: one waiting member adds one per cycle (2 cycles late),
        # and a clear in cycle t drops the waits before t
        ctx.set(dut.arrive, 0b001)
        ctx.set(dut.arrive_group[0], 0)
        await ctx.tick().repeat(7)                    # cycles t0 .. t0 + 5 counted
        assert ctx.get(dut.wait_cycles[0]) == 6 and ctx.get(dut.phases[0]) == 0
        ctx.set(dut.clear_counters, 1)
        await ctx.tick()
        ctx.set(dut.clear_counters, 0)
        assert ctx.get(dut.wait_cycles[0]) == 0
        await ctx.tick().repeat(2)
        assert ctx.get(dut.wait_cycles[0]) == 2       # cycles t and t + 1

    run_sim(dut, tb)


# ------------------------------------------------------------------------------------------
# Super-groups and random programs

@LATENCIES
def test_supergroup_barrier(latency):
    # groups: 0 = {0, 1, 2}, 1 = {3, 4}, 2 = {5}; super-group 0 (id 3) = groups 0 + 1,
    # super-group 1 (id 4) = all groups (a chip-wide barrier over the groups).
    cfg = [dict(b=0, mask=0b000111), dict(b=1, mask=0b011000), dict(b=2, mask=0b100000),
           dict(b=3, gmask=0b011), dict(b=4, gmask=0b111)]
    rng = random.Random(5)
    seq = {0: [0, 0, 3, 0, 4, 0], 1: [1, 3, 1, 1, 4, 1], 2: [2, 2, 2, 4, 2]}
    group_of = [0, 0, 0, 1, 1, 2]
    programs = [[(b, rng.randint(0, 9)) for b in seq[group_of[i]]] for i in range(6)]
    dut = GroupSyncUnit(6, 3, supergroups=2, latency=latency)
    got, ref = check_against_reference(dut, programs, cfg, seed=6)
    assert got["phases"] == [4, 4, 4, 1, 1]
    s = ref["brel"][3][0]
    assert [got["releases"][i][seq[group_of[i]].index(3)] for i in range(5)] == [s] * 5
    e = ref["brel"][4][0]
    assert [got["releases"][i][seq[group_of[i]].index(4)] for i in range(6)] == [e] * 6


@pytest.mark.parametrize("seed", range(8))
def test_random_configs_against_reference(seed):
    rng = random.Random(100 + seed)
    cores = rng.randint(2, 8)
    groups = rng.randint(1, 4)
    supergroups = rng.randint(0, 1) if groups > 1 else 0
    group_of = [rng.randrange(groups + 1) for _ in range(cores)]   # == groups: idle core
    cfg = []
    for g in range(groups):
        mask = sum(1 << i for i in range(cores) if group_of[i] == g)
        cfg.append(dict(b=g, mask=mask, budget=rng.choice([0, 0, rng.randint(2, 14)])))
    used = [g for g in range(groups) if any(x == g for x in group_of)]
    sgroups = []
    if supergroups and len(used) >= 2:
        sgroups = rng.sample(used, rng.randint(2, len(used)))
        cfg.append(dict(b=groups, gmask=sum(1 << g for g in sgroups),
                        budget=rng.choice([0, rng.randint(2, 30)])))
    # per group: number of group phases between super-barriers (same for every member)
    n_super = rng.randint(1, 3) if sgroups else 0
    segs = {g: [rng.randint(0, 3) for _ in range(n_super + 1)] for g in used}
    for g in used:
        if sum(segs[g]) == 0:
            segs[g][-1] = 1
    programs = []
    for i in range(cores):
        g = group_of[i]
        prog = []
        if g in segs:
            for j, count in enumerate(segs[g]):
                prog += [(g, rng.randint(0, 12)) for _ in range(count)]
                if g in sgroups and j < n_super:
                    prog.append((groups, rng.randint(0, 12)))
        programs.append(prog)
    dut = GroupSyncUnit(cores, groups, supergroups=supergroups, budget_width=5,
                        latency=1 + seed % 2)
    check_against_reference(dut, programs, cfg, seed=seed, sample_at=set(range(0, 300, 17)))
