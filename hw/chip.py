"""The chip top: a mesh of cores with network interfaces, the NoC (request and response
networks), the group-sync unit and the AXI4-Lite host interface."""
from amaranth import Module, Signal, Cat
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .core import Core
from .gsu import GroupSyncUnit
from .host import HostInterface
from .ni import NetworkInterface
from .noc import NoC

__all__ = ["Chip"]


class Chip(wiring.Component):
    """A HASP chip for one :class:`hasp.config.ChipConfig`. ``multiplier`` is passed to every
    core's PE array (``"ecp5"`` for ECP5 synthesis: :class:`hasp.hw.core.Core`).

    Ports
    -----
    s_axil_* : the AXI4-Lite slave (32-bit address and data) of :class:`HostInterface`; the
        memory map is in ``docs/host.md``.
    busy : Out(1)
        Some core is running.
    error : Out(1)
        Some core stopped with an error.

    Every core ``i`` sits at ``(x, y) = (i % cols, i // cols)``, with its network interface on
    router ``(x, y)`` of both networks; the host port is on the West side of router ``(0, 0)``.
    """

    def __init__(self, cfg, *, multiplier="generic"):
        self.cfg = cfg
        self.multiplier = multiplier
        self.host = HostInterface(cfg)
        members = {name: member for name, member in self.host.signature.members.items()
                   if name.startswith("s_axil_")}
        super().__init__({**members, "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        n = cfg.cores
        m.submodules.host = host = self.host
        m.submodules.noc = noc = NoC(cfg)
        m.submodules.gsu = gsu = GroupSyncUnit(n, cfg.sync.groups)

        for name in self.signature.members:
            if name.startswith("s_axil_"):
                ours, theirs = getattr(self, name), getattr(host, name)
                if self.signature.members[name].flow == In:
                    m.d.comb += theirs.eq(ours)
                else:
                    m.d.comb += ours.eq(theirs)

        wiring.connect(m, host.req_out, noc.host_req_in)
        wiring.connect(m, noc.host_resp_out, host.resp_in)
        # The host never sends on the response network nor receives on the request network.
        m.d.comb += [noc.host_resp_in.valid.eq(0), noc.host_req_out.ready.eq(1)]

        m.d.comb += [gsu.cfg_we.eq(host.grp_we), gsu.cfg_group.eq(host.grp_index),
                     gsu.cfg_mask.eq(host.grp_mask), gsu.cfg_budget.eq(0),
                     # A start clears the sticky sync errors, so a restarted core runs clean.
                     gsu.clear_flags.eq(Cat(*host.core_start).any())]
        for g in range(cfg.sync.groups):
            m.d.comb += host.grp_phases[g].eq(gsu.phases[g])

        running, errors = [], []
        for i in range(n):
            x, y = i % cfg.mesh.cols, i // cfg.mesh.cols
            core = Core(cfg, multiplier=self.multiplier)
            ni = NetworkInterface(cfg, x, y)
            m.submodules[f"core{i}"] = core
            m.submodules[f"ni{i}"] = ni
            wiring.connect(m, ni.req_out, noc.req_in[i])
            wiring.connect(m, noc.req_out[i], ni.req_in)
            wiring.connect(m, ni.resp_out, noc.resp_in[i])
            m.d.comb += noc.resp_out[i].ready.eq(1)      # cores receive no responses
            wiring.connect(m, core.send, ni.send)
            m.d.comb += core.send_done.eq(ni.send_done)
            wiring.connect(m, ni.tag_inc, core.tag_inc)
            wiring.connect(m, ni.spm_rd, core.spm_rd)
            wiring.connect(m, ni.spm_wr, core.spm_wr)
            wiring.connect(m, ni.imem_wr, core.imem_wr)
            wiring.connect(m, ni.imem_rd, core.imem_rd)

            m.d.comb += [
                gsu.arrive[i].eq(core.sync_arrive), gsu.arrive_group[i].eq(core.sync_group),
                core.sync_release.eq(gsu.release[i]), core.sync_error.eq(gsu.error[i]),
                core.start.eq(host.core_start[i]),
                host.core_running[i].eq(core.running), host.core_halted[i].eq(core.halted),
                host.core_error[i].eq(core.error), host.core_error_code[i].eq(core.error_code),
                host.core_pc[i].eq(core.pc),
                host.core_perf[i][0].eq(core.perf_busy), host.core_perf[i][1].eq(core.perf_sync),
                host.core_perf[i][2].eq(core.perf_net), host.core_perf[i][3].eq(core.perf_idle),
                host.core_perf[i][4].eq(core.perf_macs),
            ]
            running.append(core.running)
            errors.append(core.error | ni.error)
        m.d.comb += [self.busy.eq(Cat(*running).any()), self.error.eq(Cat(*errors).any())]
        return m
