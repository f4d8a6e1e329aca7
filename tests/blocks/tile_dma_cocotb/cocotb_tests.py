"""cocotb tests of the converted ``tile_dma`` against cocotbext-axi's ``AxiRam``.

Run by ``tests/blocks/test_tile_dma.py`` (which converts the block, builds it with Icarus
and passes the parameters in ``TILE_DMA_PARAMS``).  Every test compares, against the golden
model ``blocks.tile_dma.golden``: every byte and every ``tlast`` of every read tile, the
memory contents after the writes, the ``wrdone`` responses, ``error``, ``rd_bytes`` and
``wr_bytes``; and the protocol monitor's verdict.
"""
from __future__ import annotations

import numpy as np

import cocotb
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from blocks.tile_dma import bursts, command_valid, encode_command, golden, tile_beat_addresses
from tb import MEMORY_BYTES, PAGE, TB

TIMEOUT_US = 300  # 30,000 cycles: far more than any batch needs


def random_tile(rng, lanes: int, max_burst: int, lo: int, hi: int):
    """A random tile inside ``[lo, hi)``: 1-beat rows, rows longer than a burst, 4 KB edges."""
    row_beats = rng.choice([1, rng.randint(1, 4), rng.randint(max_burst, 2 * max_burst + 3),
                            rng.randint(1, 48)])
    row_beats = min(row_beats, 96)
    row_bytes = row_beats * lanes
    rows = rng.choice([1, rng.randint(2, 6)])
    gap = rng.choice([0, lanes * rng.randint(1, 24), PAGE - row_bytes % PAGE])
    stride = row_bytes + gap
    extent = (rows - 1) * stride + row_bytes
    if extent > hi - lo:
        rows, extent = 1, row_bytes
    if rng.random() < 0.6:  # start 0-8 beats below a 4 KB boundary: the tile must fit
        # from the lowest such start and from the boundary itself
        pages = [p for p in range(lo // PAGE + 1, hi // PAGE)
                 if lo <= p * PAGE - lanes * 8 and p * PAGE + extent <= hi]
        if pages:
            base = rng.choice(pages) * PAGE - lanes * rng.randint(0, 8)
            return encode_command(base=base, stride=stride, row_bytes=row_bytes, rows=rows)
    base = lo + lanes * rng.randrange(0, (hi - lo - extent) // lanes + 1)
    return encode_command(base=base, stride=stride, row_bytes=row_bytes, rows=rows)


def random_beats(rng, count: int, lanes: int) -> list[int]:
    extremes = [0, (1 << (8 * lanes)) - 1]
    return [rng.choice(extremes) if rng.random() < 0.1 else rng.getrandbits(8 * lanes)
            for _ in range(count)]


class Checker:
    """Runs batches of commands on the DUT and on the golden model and compares them."""

    def __init__(self, tb: TB):
        self.tb = tb
        self.p = tb.params
        self.lanes = tb.lanes
        self.memory = np.frombuffer(bytes(tb.rng.getrandbits(8) for _ in range(MEMORY_BYTES)),
                                    dtype=np.uint8).copy()
        tb.ram.write(0, self.memory.tobytes())
        self.rd_bytes = self.wr_bytes = 0
        self.error = False
        self.read_commands: list[int] = []
        self.write_commands: list[int] = []
        self.failing = None

    async def run(self, reads: list[int], writes: list[int]) -> None:
        """Issue all ``reads`` and ``writes`` back to back, wait, compare with the model.

        Reads and writes of one batch must not overlap (they run concurrently).
        """
        tb, rng = self.tb, self.tb.rng
        data = {i: random_beats(rng, len(tile_beat_addresses(w, data_bits=self.p["data_bits"])),
                                self.lanes) if command_valid(w, data_bits=self.p["data_bits"]) else None
                for i, w in enumerate(writes)}
        ops = [("write", w, data[i] or []) for i, w in enumerate(writes)]
        ops += [("read", r) for r in reads]
        want = golden(self.memory, ops, data_bits=self.p["data_bits"], failing=self.failing)

        for i, w in enumerate(writes):
            tb.send_write(w, data[i])
        for r in reads:
            tb.send_read(r)
        got_reads, got_done = [], []
        try:
            for _ in want["reads"]:
                frame = await with_timeout(tb.rd.recv(), TIMEOUT_US, "us")
                got_reads.append(bytes(frame.tdata))
            for _ in want["wrdone"]:
                frame = await with_timeout(tb.wrdone.recv(), TIMEOUT_US, "us")
                got_done.append(bytes(frame.tdata))
        except SimTimeoutError:
            raise AssertionError(f"timeout: {len(got_reads)} of {len(want['reads'])} read "
                                 f"tiles, {len(got_done)} of {len(want['wrdone'])} wrdone; "
                                 f"{tb.snapshot()}") from None
        await ClockCycles(tb.dut.aclk, 40)  # anything extra would show up now

        for i, (beats, got) in enumerate(zip(want["reads"], got_reads)):
            expected = b"".join(d.to_bytes(self.lanes, "little") for d, _ in beats)
            if got != expected:
                first = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b),
                             min(len(got), len(expected)))
                raise AssertionError(f"read tile {i}: {len(got)} bytes up to tlast, expected "
                                     f"{len(expected)}; first difference at byte {first}")
        assert tb.rd.empty(), "m_axis_rd: beats beyond the expected tiles"
        assert got_done == [bytes([resp]) for resp in want["wrdone"]], \
            f"wrdone {got_done}, expected {want['wrdone']}"
        assert tb.wrdone.empty(), "m_axis_wrdone: more beats than executed writes"
        stored = np.frombuffer(tb.ram.read(0, MEMORY_BYTES), dtype=np.uint8)
        diff = np.flatnonzero(stored != want["memory"])
        assert diff.size == 0, f"memory differs from the model at {diff.size} bytes, first 0x{diff[0]:x}"

        self.memory = want["memory"]
        self.rd_bytes += want["rd_bytes"]
        self.wr_bytes += want["wr_bytes"]
        self.error |= want["error"]
        self.read_commands += reads
        self.write_commands += writes
        assert int(tb.dut.rd_bytes.value) == self.rd_bytes, "rd_bytes counter"
        assert int(tb.dut.wr_bytes.value) == self.wr_bytes, "wr_bytes counter"
        assert bool(int(tb.dut.error.value)) == self.error, "error flag"

    def check_protocol(self) -> None:
        monitor = self.tb.monitor
        errors = monitor.verdict()
        kwargs = {"data_bits": self.p["data_bits"], "max_burst": self.p["max_burst"]}
        want_ar = [b for c in self.read_commands for b in bursts(c, **kwargs)]
        want_aw = [b for c in self.write_commands for b in bursts(c, **kwargs)]
        if monitor.ar_bursts != want_ar:
            errors.append(f"AR bursts {monitor.ar_bursts[:4]}... differ from the split "
                          f"{want_ar[:4]}... ({len(monitor.ar_bursts)} vs {len(want_ar)})")
        if monitor.aw_bursts != want_aw:
            errors.append(f"AW bursts differ from the split ({len(monitor.aw_bursts)} vs "
                          f"{len(want_aw)})")
        assert not errors, "protocol monitor:\n" + "\n".join(errors)


@cocotb.test()
async def random_tiles_with_stalls(dut):
    """Random tiles, both directions at once, read-after-write, every channel stalling."""
    tb = TB(dut, seed=11)
    await tb.reset()
    check = Checker(tb)
    p, lanes, rng = tb.params, tb.lanes, tb.rng
    halves = [(0, MEMORY_BYTES // 2), (MEMORY_BYTES // 2, MEMORY_BYTES)]
    written: list[int] = []
    for round_ in range(p.get("rounds", 3)):
        tb.set_pauses(rng.choice([0.0, 0.2, 0.5]) if round_ else 0.3)
        write_half, read_half = halves[round_ % 2], halves[1 - round_ % 2]
        writes = [random_tile(rng, lanes, p["max_burst"], *write_half) for _ in range(3)]
        # Read back last round's tiles (now in the read half) plus new random ones.
        reads = written[-2:] + [random_tile(rng, lanes, p["max_burst"], *read_half)
                                for _ in range(2)]
        await check.run(reads, writes)
        written = writes
    check.check_protocol()


@cocotb.test()
async def long_bursts_and_page_edges(dut):
    """Rows of whole 4 KB pages (longest bursts), tiles ending exactly at a page edge."""
    tb = TB(dut, seed=12, pause=0.1)
    await tb.reset()
    check = Checker(tb)
    p, lanes = tb.params, tb.lanes
    row = min(PAGE, p["max_burst"] * lanes * 2)
    page_rows = encode_command(base=PAGE, stride=PAGE, row_bytes=row, rows=2)
    to_edge = encode_command(base=3 * PAGE - 3 * lanes, stride=PAGE, row_bytes=3 * lanes, rows=2)
    one_beat = encode_command(base=9 * PAGE - lanes, stride=lanes, row_bytes=lanes, rows=5)
    await check.run([], [page_rows, to_edge, one_beat])
    await check.run([page_rows, to_edge, one_beat], [])
    check.check_protocol()


@cocotb.test()
async def errors_and_bad_commands(dut):
    """SLVERR on one page, misaligned and empty commands: error set, nothing hangs."""
    tb = TB(dut, seed=13)
    await tb.reset()
    check = Checker(tb)
    p, lanes, rng = tb.params, tb.lanes, tb.rng
    bad_page = 5 * PAGE
    tb.fail_addresses(bad_page, bad_page + PAGE)
    check.failing = lambda address: bad_page <= address < bad_page + PAGE

    clean = random_tile(rng, lanes, p["max_burst"], 0, 4 * PAGE)
    await check.run([clean], [])
    assert not int(dut.error.value), "error set without any cause"

    misaligned = [
        encode_command(base=2 * PAGE + lanes // 2, stride=4 * lanes, row_bytes=lanes, rows=2),
        encode_command(base=2 * PAGE, stride=4 * lanes + 2, row_bytes=lanes, rows=2),
        encode_command(base=2 * PAGE, stride=4 * lanes, row_bytes=lanes + 1, rows=2),
        encode_command(base=2 * PAGE, stride=4 * lanes, row_bytes=0, rows=2),
        encode_command(base=2 * PAGE, stride=4 * lanes, row_bytes=lanes, rows=0),
        encode_command(base=2 * PAGE, stride=4 * lanes, row_bytes=lanes, rows=1) | 1 << 100,
    ]
    across_bad = encode_command(base=bad_page - 4 * lanes, stride=PAGE // 2,
                                row_bytes=8 * lanes, rows=3)
    good_w = random_tile(rng, lanes, p["max_burst"], 8 * PAGE, 12 * PAGE)
    good_r = random_tile(rng, lanes, p["max_burst"], 0, 4 * PAGE)
    reads = [misaligned[0], good_r, misaligned[3], misaligned[5], good_r]
    writes = [misaligned[1], across_bad, misaligned[2], good_w, misaligned[4]]
    await check.run(reads, writes)
    assert int(dut.error.value), "error not set"
    await check.run([misaligned[2], across_bad, misaligned[1], good_w], [misaligned[0]])
    # Still working afterwards: a clean write and its read-back.
    after = random_tile(rng, lanes, p["max_burst"], 12 * PAGE, 15 * PAGE)
    await check.run([], [after])
    await check.run([after], [])
    check.check_protocol()
