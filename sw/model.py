"""Functional (instruction-level, untimed) model of a HASP chip running an :class:`Image`.

Every core executes its program with the semantics of ``docs/isa.md``; arithmetic is
:mod:`hasp.sw.golden`, so results are bit-exact with the RTL. Cores are interleaved round
robin, one instruction per core per step, so ``SEND``/``WAIT``/``SYNC`` interact::

    res = FunctionalModel(image).run(max_steps=100_000)
    res.check()                         # raises ModelError with a report unless all halted
    res.cores[0].spm, res.cores[0].acc, res.cores[0].tags, res.cores[0].instructions

Packet delivery: with ``latency=0`` (default) a ``SEND``'s words land in the receiver when the
``SEND`` executes. ``latency=n`` delivers each packet ``n`` steps later; with a ``seed`` every
packet takes a random ``0..n`` steps and the core order is shuffled every step. A correct
program (one that only reads received data after the matching ``WAIT``) gives the same result
under every latency and seed, which is how tests look for missing synchronisation.

Errors are :class:`hasp.sw.isa.ErrorCode`, the codes of the RTL core, with the same ``pc``.

Stops: all cores halted/idle/in error (``stop == "done"``); no core can make progress while
some wait on ``WAIT``/``SYNC`` (``"deadlock"``); ``max_steps`` steps done (``"max_steps"``).
:meth:`RunResult.report` says which core waits on what.
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import numpy as np

from . import golden, isa
from .image import Image, core_name, core_xy

__all__ = ["ErrorCode", "State", "ModelError", "CoreResult", "RunResult", "FunctionalModel",
           "run", "ACC_ROWS", "TAGS", "TAG_MAX", "Event"]

# One definition for the RTL and the model: hasp.sw.isa (re-exported here).
ACC_ROWS = isa.ACC_ROWS
TAGS = isa.TAGS
TAG_MAX = isa.TAG_MAX
ErrorCode = isa.ErrorCode


class State(str, enum.Enum):
    RUNNING = "running"
    WAIT = "wait"        # blocked on WAIT
    SYNC = "sync"        # blocked on SYNC
    HALTED = "halted"
    ERROR = "error"
    IDLE = "idle"        # no program

    def __str__(self):
        return self.value


_DONE = (State.HALTED, State.ERROR, State.IDLE)


class ModelError(RuntimeError):
    """A run did not end with every core halted; ``.result`` is the :class:`RunResult`."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class _Fault(Exception):
    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Event:
    """One trace event: ``kind`` is ``"retire"`` (the instruction finished), ``"block"`` (it
    started waiting on WAIT/SYNC) or ``"error"``."""
    step: int
    core: int
    pc: int
    kind: str
    text: str


@dataclass
class CoreResult:
    """Final state of one core."""
    core: int
    x: int
    y: int
    state: State
    pc: int
    error_code: ErrorCode | None
    error: str | None
    waiting: str | None           # what a blocked core waits on (report line)
    instructions: int             # instructions retired (LOOP/SYNC/WAIT count once per execution)
    macs: int                     # R * C * k per GEMM tile
    spm: list                     # cfg.spm.words unsigned ints
    acc: np.ndarray               # ACC_ROWS x C int64
    tags: np.ndarray              # TAGS counters
    requant: dict                 # mult, shift, zp, lo, hi
    loop_counter: int
    packets_sent: int = 0
    words_sent: int = 0
    delay_cycles: int = 0

    @property
    def status(self) -> str:
        if self.state == State.ERROR:
            return f"error {self.error_code.name} at pc {self.pc}: {self.error}"
        if self.state in (State.WAIT, State.SYNC):
            return f"blocked at pc {self.pc}: {self.waiting}"
        return f"{self.state} at pc {self.pc}"


@dataclass
class RunResult:
    cfg: object
    cores: list
    steps: int
    stop: str                      # "done" | "deadlock" | "max_steps"
    trace: list | None = None
    in_flight: int = 0             # packets sent but not delivered when the run stopped

    @property
    def ok(self) -> bool:
        """Every core with a program halted, no error, nothing left in flight."""
        return self.stop == "done" and all(c.state in (State.HALTED, State.IDLE) for c in self.cores)

    @property
    def spm(self) -> list:
        return [c.spm for c in self.cores]

    @property
    def acc(self) -> list:
        return [c.acc for c in self.cores]

    @property
    def tags(self) -> list:
        return [c.tags for c in self.cores]

    @property
    def status(self) -> list:
        return [c.state for c in self.cores]

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.cores)

    def errors(self) -> list:
        return [c for c in self.cores if c.state == State.ERROR]

    def read_lanes(self, core: int, addr: int, n: int, lanes: int | None = None) -> np.ndarray:
        """Words ``addr .. addr+n`` of ``core``'s scratchpad as an ``n x lanes`` signed array."""
        lanes = self.cfg.pe.lanes if lanes is None else lanes
        words = self.cores[core].spm[addr:addr + n]
        return _unpack(words, self.cfg.pe.lanes, self.cfg.pe.data_width)[:, :lanes]

    def report(self) -> str:
        head = {"done": "all cores stopped",
                "deadlock": "deadlock: no core can make progress",
                "max_steps": "max_steps reached with cores still running"}[self.stop]
        lines = [f"{head} after {self.steps} steps"]
        if self.in_flight:
            lines.append(f"{self.in_flight} packets still in flight")
        halted = [c.core for c in self.cores if c.state == State.HALTED]
        for c in self.cores:
            name = core_name(self.cfg, c.core)
            if c.state == State.ERROR:
                lines.append(f"{name} pc {c.pc}: error {c.error_code.name} "
                             f"({int(c.error_code)}): {c.error}")
            elif c.state in (State.WAIT, State.SYNC):
                lines.append(f"{name} pc {c.pc}: {c.waiting}")
            elif c.state == State.RUNNING:
                lines.append(f"{name} pc {c.pc}: running ({c.instructions} instructions retired)")
        if halted:
            lines.append("halted: cores " + ", ".join(map(str, halted)))
        return "\n".join(lines)

    def check(self) -> "RunResult":
        """Raise :class:`ModelError` (message = :meth:`report`) unless :attr:`ok`."""
        if not self.ok:
            raise ModelError(self.report(), self)
        return self


# ---------------------------------------------------------------------------- lane helpers
def _unpack(words, lanes: int, dw: int) -> np.ndarray:
    if not len(words):
        return np.zeros((0, lanes), np.int64)
    if dw == 8:
        raw = b"".join(w.to_bytes(lanes, "little") for w in words)
        return np.frombuffer(raw, np.int8).reshape(len(words), lanes).astype(np.int64)
    return np.stack([golden.unpack_lanes(w, lanes, dw) for w in words])


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


_NOP = isa.decode(0)            # instruction memory after the program: zero words = NOP


class _Core:
    def __init__(self, cid, cfg, program, spm_init):
        self.id = cid
        self.x, self.y = core_xy(cfg, cid)
        self.words = list(program)
        self.prog = []
        for w in self.words:
            try:
                self.prog.append(isa.decode(int(w)))
            except isa.IsaError as e:
                self.prog.append(e)
        self.spm = [0] * cfg.spm.words
        for a, w in spm_init.items():
            self.spm[a] = int(w)
        self.acc = np.zeros((ACC_ROWS, cfg.pe.cols), np.int64)
        self.tags = [0] * TAGS
        self.q = dict(mult=1, shift=0, zp=0, lo=-128, hi=127)
        self.loop = 0
        self.loop_pc = 0
        self.pc = 0
        self.state = State.RUNNING if self.prog else State.IDLE
        self.code = None
        self.msg = None
        self.block_text = None
        self.sync_group = None
        self.instructions = 0
        self.macs = 0
        self.packets_sent = 0
        self.words_sent = 0
        self.delay_cycles = 0


class FunctionalModel:
    """Instruction-level model of the chip running ``image`` (validated on construction).

    Parameters
    ----------
    image : Image
    latency : int
        Steps between a ``SEND`` and the delivery of its packet (maximum, when ``seed`` is set).
    seed : int or None
        Randomise packet latencies (``0..latency``) and the core order of every step.
    trace : bool
        Record an :class:`Event` per retired/blocking/failing instruction in ``result.trace``.
    """

    def __init__(self, image: Image, *, latency: int = 0, seed: int | None = None,
                 trace: bool = False):
        image.validate()
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        self.image = image
        self.cfg = cfg = image.cfg
        self.R, self.C = cfg.pe.rows, cfg.pe.cols
        self.lanes, self.dw, self.aw = cfg.pe.lanes, cfg.pe.data_width, cfg.pe.acc_width
        self.ww = cfg.word_width
        self.words = cfg.spm.words
        self.dmin, self.dmax = -(1 << (self.dw - 1)), (1 << (self.dw - 1)) - 1
        self.cores = [_Core(c, cfg, image.programs.get(c, ()), image.spm.get(c, {}))
                      for c in range(cfg.cores)]
        # groups the image does not list keep their reset membership (hasp.hw.gsu): group 0 =
        # every core, the others empty
        reset = [(1 << cfg.cores) - 1] + [0] * (cfg.sync.groups - 1)
        self.groups = [int(m) for m in image.groups] + reset[len(image.groups):]
        self.arrived = [0] * cfg.sync.groups
        self.latency = latency
        self.rng = random.Random(seed) if seed is not None else None
        self.in_flight = []          # (deliver_at, seq, src, dst, addr, words, tag)
        self.seq = 0
        self.steps = 0
        self.trace = [] if trace else None
        self._handlers = {
            isa.Op.NOP: self._nop, isa.Op.HALT: self._halt, isa.Op.GEMM: self._gemm,
            isa.Op.SETQ: self._setq, isa.Op.REQUANT: self._requant, isa.Op.SEND: self._send,
            isa.Op.WAIT: self._wait, isa.Op.SYNC: self._sync, isa.Op.DELAY: self._delay,
            isa.Op.LOOP: self._loop,
        }

    # ------------------------------------------------------------------ driver
    def step(self) -> bool:
        """Deliver due packets, then give every running/waiting core one instruction.
        Returns whether anything changed."""
        self.steps += 1
        progress = self._deliver()
        order = list(self.cores)
        if self.rng is not None:
            self.rng.shuffle(order)
        for core in order:
            if core.state in (State.RUNNING, State.WAIT):
                progress |= self._execute(core)
        return progress

    def run(self, max_steps: int = 1_000_000, check: bool = False) -> RunResult:
        """Run until every core stopped, a deadlock, or ``max_steps`` steps. With ``check``,
        raise :class:`ModelError` (with the report) unless every core halted."""
        stop = "max_steps"
        while self.steps < max_steps:
            if all(c.state in _DONE for c in self.cores) and not self.in_flight:
                stop = "done"
                break
            if not self.step() and not self.in_flight:
                stop = "deadlock"
                break
        else:
            if all(c.state in _DONE for c in self.cores) and not self.in_flight:
                stop = "done"
        res = self.result(stop)
        return res.check() if check else res

    def result(self, stop: str = "max_steps") -> RunResult:
        cores = []
        for c in self.cores:
            cores.append(CoreResult(
                core=c.id, x=c.x, y=c.y, state=c.state, pc=c.pc, error_code=c.code, error=c.msg,
                waiting=self._waiting_text(c) if c.state in (State.WAIT, State.SYNC) else None,
                instructions=c.instructions, macs=c.macs, spm=list(c.spm), acc=c.acc.copy(),
                tags=np.array(c.tags, np.int64), requant=dict(c.q), loop_counter=c.loop,
                packets_sent=c.packets_sent, words_sent=c.words_sent,
                delay_cycles=c.delay_cycles))
        return RunResult(self.cfg, cores, self.steps, stop, self.trace, len(self.in_flight))

    def _waiting_text(self, c) -> str:
        insn = c.prog[c.pc] if c.pc < len(c.prog) else _NOP
        if c.state == State.WAIT:
            return (f"WAIT tag {insn.tag} count {insn.count} "
                    f"(counter {c.tags[insn.tag]})")
        g = c.sync_group
        missing = [m for m in range(self.cfg.cores)
                   if self.groups[g] >> m & 1 and not self.arrived[g] >> m & 1]
        text = f"SYNC group {g} (waiting for cores {', '.join(map(str, missing))}"
        stopped = [f"core {m} {self.cores[m].state}" for m in missing
                   if self.cores[m].state in _DONE]
        if stopped:
            text += "; " + ", ".join(stopped)
        return text + ")"

    def _event(self, core, pc, kind, text):
        if self.trace is not None:
            self.trace.append(Event(self.steps, core.id, pc, kind, text))

    def _execute(self, c) -> bool:
        pc = c.pc
        depth = self.cfg.core.imem_depth
        if pc >= depth:
            self._fail(c, ErrorCode.PC_OVERFLOW,
                       f"pc {pc} is past the end of instruction memory ({depth} words; the "
                       f"program has {len(c.prog)} instructions, the words after it are NOP); "
                       f"missing HALT?")
            return True
        insn = c.prog[pc] if pc < len(c.prog) else _NOP
        if isinstance(insn, isa.IsaError):
            self._fail(c, ErrorCode.ILLEGAL_OP,
                       f"illegal instruction {c.words[pc]:#018x} (opcode "
                       f"{c.words[pc] & ((1 << isa.OP_BITS) - 1)}) at pc {pc}")
            return True
        try:
            nxt = self._handlers[insn.op](c, insn)
        except _Fault as f:
            self._fail(c, f.code, f"{insn!r}: {f.message}")
            return True
        if nxt is None:                   # blocked
            if c.state == State.RUNNING:
                raise AssertionError("blocked handler did not set a state")
            return False
        if nxt is True:                   # handled elsewhere (SYNC release, first block)
            return True
        c.instructions += 1
        c.pc = nxt
        self._event(c, pc, "retire", repr(insn))
        return True

    def _fail(self, c, code, msg):
        c.state, c.code, c.msg = State.ERROR, code, msg
        self._event(c, c.pc, "error", f"{code.name}: {msg}")

    # ------------------------------------------------------------------ checks
    def _spm_range(self, what, addr, n, core=None):
        if addr + n > self.words:
            on = "" if core is None else f" of core {core}"
            raise _Fault(ErrorCode.SPM_RANGE,
                         f"{what} spm words [{addr}, {addr + n}){on} out of range (the "
                         f"scratchpad holds {self.words} words)")

    def _acc_range(self, what, row, n):
        if row + n > ACC_ROWS:
            raise _Fault(ErrorCode.ACC_RANGE,
                         f"{what} accumulator rows [{row}, {row + n}) out of range "
                         f"({ACC_ROWS} rows)")

    def _tag_range(self, tag):
        if tag >= TAGS:
            raise _Fault(ErrorCode.BAD_TAG, f"tag {tag} out of range (a core has {TAGS} tag "
                                            f"counters, 0..{TAGS - 1})")

    # ------------------------------------------------------------------ instructions
    def _nop(self, c, i):
        return c.pc + 1

    def _halt(self, c, i):
        c.state = State.HALTED
        return c.pc

    def _delay(self, c, i):
        c.delay_cycles += i.cycles
        return c.pc + 1

    def _gemm(self, c, i):
        k, mt, nt, R, C = i.k, i.mt, i.nt, self.R, self.C
        if not (k and mt and nt):
            return c.pc + 1
        self._spm_range("GEMM A reads", i.a, mt * k)
        self._spm_range("GEMM B reads", i.b, nt * k)
        self._acc_range("GEMM writes", i.dst, mt * nt * R)
        A = _unpack(c.spm[i.a:i.a + mt * k], self.lanes, self.dw)
        B = _unpack(c.spm[i.b:i.b + nt * k], self.lanes, self.dw)
        for mi in range(mt):
            a_t = A[mi * k:(mi + 1) * k, :R].T
            for nj in range(nt):
                b_t = B[nj * k:(nj + 1) * k, :C]
                row = i.dst + (mi * nt + nj) * R
                prev = c.acc[row:row + R] if i.acc else None
                c.acc[row:row + R] = golden.gemm(a_t, b_t, prev, self.dw, self.aw)
        c.macs += R * C * k * mt * nt
        return c.pc + 1

    def _setq(self, c, i):
        if i.shift > golden.SHIFT_MAX:
            raise _Fault(ErrorCode.BAD_REQUANT, f"shift {i.shift} > {golden.SHIFT_MAX}")
        lo, hi = max(i.lo, self.dmin), min(i.hi, self.dmax)
        if lo > hi:
            raise _Fault(ErrorCode.BAD_REQUANT,
                         f"empty clamp range [{i.lo}, {i.hi}] (data range "
                         f"[{self.dmin}, {self.dmax}])")
        c.q = dict(mult=i.mult, shift=i.shift, zp=i.zp, lo=i.lo, hi=i.hi)
        return c.pc + 1

    def _requant(self, c, i):
        n = i.rows
        if not n:
            return c.pc + 1
        self._spm_range("REQUANT writes", i.dst, n)
        if i.use_bias:
            self._spm_range("REQUANT bias reads", i.bias, n)
        self._acc_range("REQUANT reads", i.src, n)
        v = c.acc[i.src:i.src + n]
        if i.use_bias:
            bits = min(self.aw, self.ww)
            b = np.array([_sext(w, bits) for w in c.spm[i.bias:i.bias + n]], np.int64)
            v = golden.wrap(v + b[:, None], self.aw)
        q = c.q
        out = golden.requantize(v, q["mult"], q["shift"], q["zp"],
                                max(q["lo"], self.dmin), min(q["hi"], self.dmax))
        for r in range(n):
            c.spm[i.dst + r] = golden.pack_lanes(out[r], self.dw)
        return c.pc + 1

    def _send(self, c, i):
        # the RTL core's order of checks: SPM_RANGE, BAD_DEST, BAD_TAG
        cols, rows = self.cfg.mesh.cols, self.cfg.mesh.rows
        inside = i.x < cols and i.y < rows
        dst = i.y * cols + i.x
        self._spm_range("SEND reads", i.src, i.len)
        self._spm_range("SEND writes", i.dst, i.len, core=dst if inside else None)
        if not inside:
            raise _Fault(ErrorCode.BAD_DEST,
                         f"destination (x={i.x},y={i.y}) is outside the {cols}x{rows} mesh")
        self._tag_range(i.tag)
        words = c.spm[i.src:i.src + i.len]
        c.packets_sent += 1
        c.words_sent += i.len
        if self.rng is not None:
            delay = self.rng.randint(0, self.latency)
        else:
            delay = self.latency
        if delay == 0:
            self._write_packet(c.id, dst, i.dst, words, i.tag)
        else:
            self.seq += 1
            self.in_flight.append((self.steps + delay, self.seq, c.id, dst, i.dst, words, i.tag))
        return c.pc + 1

    def _deliver(self) -> bool:
        if not self.in_flight:
            return False
        due = sorted(p for p in self.in_flight if p[0] <= self.steps)
        if not due:
            return False
        self.in_flight = [p for p in self.in_flight if p[0] > self.steps]
        for _, _, src, dst, addr, words, tag in due:
            self._write_packet(src, dst, addr, words, tag)
        return True

    def _write_packet(self, src, dst, addr, words, tag):
        r = self.cores[dst]
        r.spm[addr:addr + len(words)] = words
        r.tags[tag] = min(r.tags[tag] + 1, TAG_MAX)      # counters saturate

    def _wait(self, c, i):
        self._tag_range(i.tag)
        if c.tags[i.tag] >= i.count:
            c.tags[i.tag] -= i.count
            c.state = State.RUNNING
            return c.pc + 1
        if c.state != State.WAIT:
            c.state = State.WAIT
            self._event(c, c.pc, "block", repr(i))
            return True                   # a state change, not a retirement
        return None

    def _sync(self, c, i):
        g = i.group
        if g >= self.cfg.sync.groups:
            raise _Fault(ErrorCode.BAD_GROUP,
                         f"group {g} does not exist (the chip has {self.cfg.sync.groups} groups)")
        mask = self.groups[g]
        if not mask >> c.id & 1:
            members = [m for m in range(self.cfg.cores) if mask >> m & 1]
            # the group-sync unit holds the core and flags it; the core stops at the SYNC
            raise _Fault(ErrorCode.SYNC_ERROR,
                         f"core {c.id} is not a member of sync group {g} (members: "
                         f"{', '.join(map(str, members)) or 'none'})")
        self.arrived[g] |= 1 << c.id
        c.state, c.sync_group = State.SYNC, g
        self._event(c, c.pc, "block", repr(i))
        if self.arrived[g] == mask:
            self.arrived[g] = 0
            for m in range(self.cfg.cores):
                if mask >> m & 1:
                    mc = self.cores[m]
                    mc.state, mc.sync_group = State.RUNNING, None
                    mc.instructions += 1
                    self._event(mc, mc.pc, "retire", repr(mc.prog[mc.pc]))
                    mc.pc += 1
        return True

    def _loop(self, c, i):
        if i.target > c.pc:
            raise _Fault(ErrorCode.LOOP_TARGET, f"target {i.target} is after the LOOP")
        if c.loop and c.loop_pc != c.pc:
            raise _Fault(ErrorCode.LOOP_NEST,
                         f"nested loop: the LOOP at pc {c.loop_pc} is still active")
        if c.loop == 0:
            c.loop, c.loop_pc = max(i.count, 1), c.pc
        c.loop -= 1
        return i.target if c.loop else c.pc + 1


def run(image: Image, max_steps: int = 1_000_000, **kwargs) -> RunResult:
    """``FunctionalModel(image, **kwargs).run(max_steps)``."""
    return FunctionalModel(image, **kwargs).run(max_steps)
