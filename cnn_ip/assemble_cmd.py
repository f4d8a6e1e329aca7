"""``cnn-ip assemble PLAN -o DIR [--model QDIR | --random-weights] [--report-only]``.

Plans the accelerator for a plan's network (``cnn_ip.planner``) and writes into ``DIR``
what docs/conventions.md (§6) lists:

* ``rtl/``: the network top ``<name>.v`` (``assemblies.network``), its ``.vlt``, every ROM
  image encoded for the chosen folding and the simulation models of vendor primitives;
* ``<name>.json``: the top's sidecar (ports read back from the Verilog, stream shapes);
* ``model.npz``: the integer model the hardware implements; ``plan.yaml``: the plan as given;
* when any stage is frame-based: ``weights.bin``, the off-chip weight image, and
  ``memory_map.json`` (``assemblies.network.weight_image``: ``quant.offchip.layout`` of the
  frame stages in stage order, bus 8 bytes, base 0; each frame stage is built with its
  layer's address from the same map);
* ``assemble_report.json``, ``layers.png`` (per-layer cycles and block RAM, bottleneck
  marked), and the table printed on the terminal.

The model comes from ``--model`` (a ``cnn-ip quantize`` output directory), from
``--random-weights`` (random integer weights at each layer's sparsity, ``auto`` taken at
the search's starting point, with requantization constants that keep random inputs inside
the activation ranges: for hardware exploration; the report says so), or else from running
the quantization flow into a cache that later runs reuse.  The converted RTL is cached too,
keyed by everything it depends on (the stages' parameters and weights, the target, and the
source of the blocks that build it).  Everything is built in a scratch directory next to
``DIR`` and renamed into place at the end; the same inputs give byte-identical files.
``--report-only`` stops after the plan and the report (no ``rtl/``, no sidecar).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from cnn_ip.errors import UserError, cannot_write, check_output_dir
from cnn_ip.export import replacing
from cnn_ip.plan import load_plan

REPORT = "assemble_report.json"
FORMAT = "cnn_ip.assemble/1"
CACHE_ENV = "CNN_IP_CACHE"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "assemble", help="plan a network's accelerator and write its Verilog, model and report")
    parser.add_argument("plan", metavar="PLAN", help="plan file (YAML)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output directory (new, empty, or a previous assemble output, "
                             "which is replaced)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="QDIR", help="a `cnn-ip quantize` output directory")
    source.add_argument("--random-weights", action="store_true",
                        help="random integer weights at each layer's sparsity (hardware "
                             "exploration without training)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of --random-weights (default 0)")
    parser.add_argument("--report-only", action="store_true",
                        help="stop after the plan and the report (no RTL)")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help=f"cache of quantized models and converted RTL (default "
                             f"${CACHE_ENV} or ~/.cache/cnn_ip)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, no table")
    parser.set_defaults(run=run)


# --------------------------------------------------------------------------- models

def random_model(plan, seed: int = 0) -> list:
    """The plan's network with random integer weights (``quant.reference.IntLayer`` list).

    Weights are uniform over the mode's non-zero codes, with each layer's ``sparsity`` of
    zeros (``auto``: the search's starting point, ``base_sparsity``).  Each layer's
    multiplier maps three standard deviations of its accumulator (uniform random inputs
    over the input range) to the width of its output range, and its biases centre the
    sums there (1.5 deviations up for relu, 0 otherwise, give or take a quarter), so random
    inputs stay inside the activation ranges instead of saturating.
    """
    from blocks.requant import out_range
    from quant import weight_modes
    from quant.fixedpoint import requant_constants
    from quant.reference import IntLayer

    rng = np.random.default_rng(seed)
    base = plan.quantize.get("base_sparsity", _default_setting("base_sparsity"))
    mbits = plan.quantize.get("mbits", _default_setting("mbits"))
    layers, in_range = [], (0, 255)
    for spec in plan.layers:
        if not spec.has_weights:
            layers.append(IntLayer(type="maxpool", name=spec.name, in_shape=spec.in_shape,
                                   out_shape=spec.out_shape, k=spec.k, stride=spec.stride,
                                   pad=spec.pad_before, pad_end=spec.pad_after))
            continue
        weights, wbits = spec.mode
        sparsity = base if spec.sparsity == "auto" else spec.sparsity
        low, high = weight_modes.value_range(weights, wbits)
        shape = (spec.out, spec.reduce)
        values = rng.integers(low, high, size=shape)        # low .. high-1, then skip 0:
        values[values >= 0] += 1                             # uniform over non-zero codes
        if weight_modes.has_zero(weights):
            values[rng.random(shape) < sparsity] = 0
        lo_in, hi_in = in_range
        mean_sq_a = (lo_in ** 2 + lo_in * hi_in + hi_in ** 2) / 3
        sigma = max(1.0, float(np.sqrt(spec.reduce * mean_sq_a * np.mean(values.astype(float) ** 2))))
        # relu keeps only the positive side: centre its sums at 1.5 deviations instead of 0
        centre = 1.5 * sigma if spec.act == "relu" and not spec.final else 0.0
        bias = np.round(centre + rng.uniform(-sigma / 4, sigma / 4, size=spec.out)).astype(np.int64)
        if spec.final:
            M, S = requant_constants(np.ones(spec.out), mbits)
            lo = hi = 0
            M_neg = M
        else:
            lo, hi = out_range(spec.act_bits, spec.act != "relu")     # Contract 2
            ratio = np.full(spec.out, hi / (3 * sigma))
            M, S = requant_constants(ratio, mbits)
            M_neg = M
            if spec.act == "leaky":
                M_neg, _ = requant_constants(ratio * spec.slope, mbits, S)
            in_next = (lo, hi)
        layers.append(IntLayer(
            type=spec.type, name=spec.name, in_shape=spec.in_shape, out_shape=spec.out_shape,
            k=spec.k if spec.type == "conv" else 1, stride=spec.stride, pad=spec.pad,
            weights=spec.weights, act=spec.act, act_bits=None if spec.final else spec.act_bits,
            final=spec.final, S=int(S), lo=lo, hi=hi, W=values.astype(np.int64), bias=bias,
            M=np.asarray(M, np.int64), M_neg=np.asarray(M_neg, np.int64)))
        if not spec.final:
            in_range = in_next
    return layers


def _default_setting(name):
    """A default of ``quant.pipeline.Settings`` (read from the dataclass, no torch import)."""
    import ast
    import importlib.util
    source = Path(importlib.util.find_spec("quant.pipeline").origin).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", None) == name:
                    return ast.literal_eval(item.value)
    raise KeyError(name)


def load_quantized(plan, qdir) -> list:
    """The integer model of a ``cnn-ip quantize`` output, checked against the plan."""
    path = Path(qdir) / "model.npz"
    if not path.is_file():
        raise UserError(f"assemble: --model {qdir}: no model.npz (give a `cnn-ip quantize` "
                        "output directory)")
    layers = read_model(path, f"assemble: --model {qdir}: model.npz")
    check_model(plan, layers, f"assemble: {path}", "quantize this plan")
    return layers


def read_model(path, where: str) -> list:
    """The layers of a ``model.npz``, or UserError ``where: unreadable: ...``."""
    from quant.reference import MODEL_ERRORS, load_model
    try:
        return load_model(path)
    except MODEL_ERRORS as error:
        raise UserError(f"{where}: unreadable: {error}") from None


def check_model(plan, layers, where: str, remedy: str) -> None:
    """UserError (``where: what differs: remedy``) unless ``layers`` are the plan's network."""
    if len(layers) != len(plan.layers):
        raise UserError(f"{where}: has {len(layers)} layers, the plan {len(plan.layers)}: "
                        f"{remedy}")
    for spec, layer in zip(plan.layers, layers):
        want = (spec.name, spec.type, tuple(spec.in_shape), tuple(spec.out_shape), spec.weights,
                None if spec.final else spec.act_bits if spec.has_weights else None)
        got = (layer.name, layer.type, tuple(layer.in_shape), tuple(layer.out_shape),
               layer.weights, layer.act_bits)
        if got[:5] != want[:5] or (spec.has_weights and got[5] != want[5]):
            raise UserError(f"{where}: layer {layer.name} is {got}, the plan says "
                            f"{want} (name, type, in, out, weights, act_bits): {remedy}")
        if spec.has_weights:
            problem = layer_values_problem(spec, layer)
            if problem:
                raise UserError(f"{where}: layer {layer.name}: {problem}: {remedy}")


def layer_values_problem(spec, layer) -> str | None:
    """What is wrong with a weight layer's numbers for the plan's layer ``spec`` (None:
    nothing), by the rules of the blocks that will hold them (the weight codes the
    decoder encodes, the constants the requantizer takes), so that a damaged model.npz is
    refused here and not in the middle of a conversion, or never (``--report-only``)."""
    from assemblies.conv_row import check_numbers
    from blocks import requant
    if layer.final != spec.final:
        return f"final is {layer.final}, the plan's last layer is {spec.name}"
    try:
        W, constants = check_numbers(layer, *spec.mode)
    except ValueError as error:
        return str(error)
    if W.shape != (spec.out, spec.reduce):
        return f"W is {W.shape[0]}x{W.shape[1]}, the layer needs {spec.out}x{spec.reduce}"
    if len(constants["M"]) != spec.out:
        return f"bias and M have {len(constants['M'])} values, the layer {spec.out} outputs"
    if spec.final:                      # z = acc * M: no shift, no clamp (Contract 2)
        return None
    want = requant.out_range(spec.act_bits, spec.act != "relu")
    if (layer.lo, layer.hi) != want:
        return (f"lo, hi are {layer.lo}, {layer.hi}; {spec.act_bits}-bit {spec.act} outputs "
                f"are {want}")
    return None


def cache_root(args) -> Path:
    root = args.cache or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cnn_ip"
    return Path(root)


def digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def quantize_dir(plan_text: str, args) -> Path:
    """The cache entry of a plan's quantized model: keyed by the plan's text and the
    quantization code."""
    return cache_root(args) / "quantize" / digest(plan_text, source_digest(("quant",)))


def quantized_in_cache(plan, plan_text: str, args) -> tuple[list, Path]:
    """Run ``cnn-ip quantize``'s flow once per plan text into the cache; reuse it after.
    Returns the layers and the cache entry they came from (its key is computed once)."""
    if plan.dataset is None:
        plan.fail("dataset", "missing (assemble without --model or --random-weights quantizes "
                  "the network first and needs a dataset)")
    directory = quantize_dir(plan_text, args)
    if not (directory / "model.npz").is_file():
        from quant.data import load_dataset
        from quant.pipeline import Settings, quantize
        directory.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".quantize.", dir=directory.parent))
        try:
            settings = Settings(progress=not args.quiet, **plan.quantize)
            extra = {"detect": plan.detect} if plan.detect else {}
            quantize(plan.layers, dataset_of(plan, load_dataset), scratch, settings,
                     name=plan.name, **extra)
            if not directory.exists():
                scratch.rename(directory)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return load_quantized(plan, directory), directory


def dataset_of(plan, load_dataset):
    """The plan's data set, at the plan's input size where the loader takes one (the
    detection canvases)."""
    import inspect
    if "size" in inspect.signature(load_dataset).parameters:
        return load_dataset(plan.dataset, size=plan.input_shape[1:])
    return load_dataset(plan.dataset)


# --------------------------------------------------------------------------- files

def source_digest(packages) -> str:
    """Digest of the Python source of ``packages`` (what converted RTL depends on)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def save_npz(path, layers) -> None:
    """``quant.reference.save_model`` with fixed zip timestamps (byte-identical reruns)."""
    from quant.reference import save_model
    save_model(path, layers)
    buffer = io.BytesIO(Path(path).read_bytes())
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.external_attr = 0o644 << 16
            out.writestr(fixed, source.read(info.filename))


def model_digest(layers) -> str:
    h = hashlib.sha256()
    for layer in layers:
        h.update(json.dumps(layer.meta(), sort_keys=True, default=str).encode())
        for key in layer.ARRAYS:
            value = getattr(layer, key)
            if value is not None:
                h.update(key.encode() + np.ascontiguousarray(value, dtype=np.int64).tobytes())
    return h.hexdigest()


def write_rtl(result, rtl_dir: Path, args) -> dict:
    """The network top into ``rtl_dir``, from the cache when it was converted before."""
    from assemblies import network
    plans = result.stage_plans()
    key = digest(network.FORMAT, result.plan.name,
                 result.plan.device, model_digest([p.layer for p in plans]),
                 [(p.lanes, p.simd, p.fifo_depth, p.dataflow, p.buffers) for p in plans],
                 source_digest(("blocks", "assemblies", "quant", "cnn_ip")))
    cached = cache_root(args) / "rtl" / key
    if not (cached / "sidecar.json").is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".rtl.", dir=cached.parent))
        try:
            info = convert(plans, scratch, name=result.plan.name, target=result.plan.device,
                           path=result.plan.path)
            (scratch / "sidecar.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            if not cached.exists():
                scratch.rename(cached)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(cached / "rtl", rtl_dir)
    return json.loads((cached / "sidecar.json").read_text())


def convert(plans, scratch: Path, *, name: str, target: str, path: str) -> dict:
    """``cnn_ip.export.write_network`` into ``scratch/rtl`` in a child interpreter (a fixed
    string-hash seed as well, although ``blocks.myhdl_patches`` already makes MyHDL's
    output independent of it)."""
    job = scratch / "job.pickle"
    with open(job, "wb") as handle:
        pickle.dump({"plans": plans, "out": str(scratch / "rtl"), "name": name,
                     "target": target}, handle)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "cnn_ip.assemble_cmd", str(job)], env=env,
                          cwd=root, capture_output=True, text=True)
    job.unlink()
    if done.returncode == 2:            # a block's parameter check: say which, one line
        raise UserError(f"assemble: {path}: the network top cannot be built: "
                        f"{done.stderr.strip().splitlines()[-1]}")
    if done.returncode != 0:
        raise RuntimeError(f"converting the network top failed:\n{done.stderr}")
    return json.loads(done.stdout)


def _convert_job(job_path) -> int:
    """The child's side of :func:`convert`: the sidecar as JSON on stdout."""
    from cnn_ip import export
    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    try:
        with warnings.catch_warnings():
            # MyHDL names every driven-but-unread signal (a tlast a block ignores, ...)
            warnings.filterwarnings("ignore", module=r"myhdl\.")
            info = export.write_network(job["plans"], job["out"], name=job["name"],
                                     target=job["target"])
    except ValueError as error:
        print(str(error).replace("\n", " "), file=sys.stderr)
        return 2
    print(json.dumps(info))
    return 0


def write_weight_image(plans, directory: Path) -> bool:
    """``weights.bin`` and ``memory_map.json`` when any stage is frame-based."""
    from assemblies.network import weight_image
    image, memory_map = weight_image(plans)
    if memory_map is None:
        return False
    (directory / "weights.bin").write_bytes(image)
    (directory / "memory_map.json").write_text(json.dumps(memory_map, indent=2) + "\n")
    return True


# --------------------------------------------------------------------------- command

def run(args) -> int:
    from cnn_ip import report
    from cnn_ip.plan import check_buildable, check_top_name
    from cnn_ip.planner import plan_network, resolve_device

    started = time.monotonic()
    if args.seed < 0:
        raise UserError(f"assemble: --seed: must be an integer >= 0, got {args.seed}")
    plan = load_plan(args.plan)
    if f"{plan.name}.json" == REPORT:
        plan.fail("name", f"the top's sidecar {plan.name}.json would overwrite the report; "
                  "choose another name")
    check_buildable(plan)               # before minutes of quantizing, not after
    check_top_name(plan)
    resolve_device(plan)
    plan_text = Path(args.plan).read_text()
    out = Path(args.output)
    check_output_dir(f"assemble: -o {args.output}", args.output, previous=REPORT)
    check_output_dir(f"assemble: cache {cache_root(args)}", cache_root(args))
    steps = ["model", "plan", "report"] + ([] if args.report_only else ["rtl"])
    progress = _progress(len(steps), args.quiet)
    progress.set_description("model")
    model_file = None                  # a quantize output's model.npz, copied as it is
    if args.model:
        layers, source = load_quantized(plan, args.model), f"quantized: {args.model}"
        model_file = Path(args.model) / "model.npz"
    elif args.random_weights:
        layers, source = random_model(plan, args.seed), "random-weights"
    else:
        (layers, directory), source = quantized_in_cache(plan, plan_text, args), "quantized (cache)"
        model_file = directory / "model.npz"
    progress.update()
    progress.set_description("plan")
    result = plan_network(plan, layers)
    progress.update()
    try:
        with replacing(out) as scratch:
            (scratch / "plan.yaml").write_text(plan_text)
            if model_file is None:
                save_npz(scratch / "model.npz", layers)
            else:
                shutil.copyfile(model_file, scratch / "model.npz")
            sidecar, offchip = None, False
            if not args.report_only:
                progress.set_description("rtl")
                sidecar = write_rtl(result, scratch / "rtl", args)
                (scratch / f"{plan.name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
                offchip = write_weight_image(result.stage_plans(), scratch)
                progress.update()
            progress.set_description("report")
            data = report.build(result, source=source,
                                seed=args.seed if args.random_weights else None,
                                rtl_dir=None if args.report_only else scratch / "rtl")
            if model_file is not None:
                data["quantized_accuracy"] = quantized_accuracy(model_file.parent)
            (scratch / REPORT).write_text(json.dumps(data, indent=2) + "\n")
            report.plot(data, scratch / "layers.png")
            progress.update()
    except OSError as error:            # a directory the user named, unwritable
        raise cannot_write("assemble", error) from None
    finally:
        progress.close()
    if not args.quiet:
        print(report.table(data))
    written = "plan, report" if args.report_only else "rtl/, sidecar, plan, report"
    if offchip:
        written += ", weights.bin, memory_map.json"
    print(f"wrote {out}/ ({written}, model.npz, layers.png) in {time.monotonic() - started:.1f} s")
    return 0


def quantized_accuracy(qdir: Path) -> dict | None:
    """fp32 and integer test accuracy from a quantize output's report, so that
    ``cnn-ip simulate`` can print them beside the RTL's; None when it has none."""
    path = qdir / "quant_report.json"
    if not path.is_file():
        return None
    quant = json.loads(path.read_text())
    if "fp32_accuracy" not in quant or "int_accuracy" not in quant:
        return None
    return {"fp32": quant["fp32_accuracy"], "integer": quant["int_accuracy"]}


def _progress(total, quiet):
    """Bars on a terminal only: where stderr is a file or pipe, a bar's text would sit in
    front of an error's one line (``model: 0/4 [00:00]cnn-ip: assemble: ...``)."""
    from tqdm import tqdm
    return tqdm(total=total, disable=True if quiet else None, file=sys.stderr, leave=False,
                bar_format="{desc:8} {bar} {n_fmt}/{total_fmt} [{elapsed}]")


if __name__ == "__main__":
    sys.exit(_convert_job(sys.argv[1]))
