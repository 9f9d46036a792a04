"""Run the book's notebooks with papermill on one profile, then build the book.

    python -m faceprompt.book.build --profile configs/book_default.yaml
    python -m faceprompt.book.build --profile configs/book_gpu.yaml --set backbone=siglip2-b16 work_dir=work/gpu-siglip2

A profile (YAML) gives the parameters every notebook receives (``parameters``), per-notebook extras
(``notebooks: {30_train: {...}}``), the methods ``30_train`` is run for (default: every method of the
registry that trains, :func:`faceprompt.book.methods.trained_methods`), a method's own ``30_train``
parameters (``method_parameters: {v2pt: {train_config: {anchor_weight: 5.0}}}``: mappings are merged key
by key into the shared ones, any other value replaces it), and how many notebooks may run at once.
``30_train``'s ``train_config`` holds TrainConfig fields in a run config's own words (``configs/train_*.yaml``);
its ``method_options`` serve every method, each taking those its parts declare. ``--set KEY=VALUE`` overrides
a profile field by its name and any other key as a shared notebook parameter (``faceprompt.config``'s
one override syntax). Notebooks run in stages: data preparation and the recorded measurements (in
parallel), zero-shot, one training run per method (in parallel), then evaluation and attention (in
parallel), then the demo. Each executed notebook lands in ``executed_dir`` (``book/_executed``)
with a stamp of what produced it (its source, its parameters, the package code and the stamps of the
stages before it); a notebook whose stamp is unchanged is skipped.
Finally ``jupyter-book build`` runs with warnings as errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceprompt.config import Config, add_set_argument, merge_overrides, parse_overrides, read_yaml
from faceprompt.locations import fill_shared, project_root, shared_data_root

NOTEBOOKS = ("10_data_prep", "20_zero_shot", "30_train", "40_evaluate", "45_data_efficiency", "50_attention",
             "60_demo", "70_recorded")
STAGES: tuple[tuple[str, ...], ...] = (("10_data_prep", "70_recorded"), ("20_zero_shot",), ("30_train",),
                                       ("45_data_efficiency", "40_evaluate", "50_attention"), ("60_demo",))
STAMP_FILE = ".stamps.json"
PLACEHOLDER_CHAPTERS = {
    "book/datasets.md": "# Datasets and face crops\n\nThis chapter is being written.\n",
    "book/demo.md": "# The demo\n\nThis chapter is being written.\n",
    "book/faceclip_tiny.md": "# faceclip-tiny: a small face model\n\nThis chapter is being written.\n",
}
# What shapes a notebook's output besides its source and parameters (hashed into every stamp).
FINGERPRINT_FOLDERS = ("faceprompt", "data_prep", "benchmarks/results", "book/_data")
SELF = "faceprompt/book/build.py"  # left out of the fingerprint, as the files named pipeline.py are
DATA_CHOICE_ENV = "FACEPROMPT_BOOK_DATA"  # "synthetic" forces the synthetic faces even when real data are here
REAL_DATASETS = ("UTKFace", "facial_expressions", "LFW", "FERPlus")  # folders the real-data profile reads


def _trained_methods() -> tuple[str, ...]:
    from faceprompt.book.methods import trained_methods

    return tuple(trained_methods())


@dataclass(frozen=True)
class Profile(Config):
    """A validated book profile (see the module docstring and ``configs/book_default.yaml``).

    ``methods`` defaults to every method that trains (:func:`faceprompt.book.methods.trained_methods`);
    ``data_source`` is set by :func:`load_profile` (which data the run uses, and why).
    """

    name: str = "default"
    description: str = ""
    parameters: dict = field(default_factory=dict)
    notebooks: dict = field(default_factory=dict)
    methods: tuple[str, ...] = field(default_factory=_trained_methods)
    seeds: dict = field(default_factory=dict)  # method -> training seeds (others train once, seed 0)
    method_parameters: dict = field(default_factory=dict)  # method -> its own 30_train parameters
    parallel: int = 2
    threads: int = 1
    executed_dir: str = "book/_executed"
    build_book: bool = True
    real_data: str | None = None  # a profile run instead when the shared real datasets are present
    data_source: str = "as configured"

    @classmethod
    def convert(cls, data: dict, where: str) -> dict:
        data["parameters"] = dict(data.get("parameters") or {})
        data["notebooks"] = _notebook_sections(data.get("notebooks") or {}, where)
        data["seeds"] = {m: _seed_list(v, f"{where}.seeds.{m}") for m, v in _mapping(data, "seeds", where).items()}
        data["method_parameters"] = dict(_mapping(data, "method_parameters", where))
        return data

    def validate(self, where: str = "profile") -> None:
        from faceprompt.book.methods import trains
        from faceprompt.prompts import resolve_method

        for method in self.methods:
            resolve_method(method)  # "unknown method ..." names it
            if not trains(method):
                raise ValueError(f"{where}.methods: {method} is not trained (20_zero_shot evaluates it)")
        for key in ("seeds", "method_parameters"):
            for method in getattr(self, key):
                if method not in self.methods:
                    raise ValueError(f"{where}.{key}: {method!r} is not among the profile's methods")
        for method, values in self.method_parameters.items():
            if not isinstance(values, dict) or not values:
                raise ValueError(f"{where}.method_parameters.{method}: expected a mapping of 30_train parameters")
            for reserved in ("method", "seed"):
                if reserved in values:
                    raise ValueError(f"{where}.method_parameters.{method}: {reserved!r} is set by the pipeline")
        target = self.parameters.get("target")
        if target is not None:
            names = [d if isinstance(d, str) else d.get("name") for d in self.parameters.get("datasets", [])]
            if not isinstance(target, dict) or target.get("dataset") not in names or "task" not in target:
                raise ValueError(f"{where}.parameters.target: {target!r} must be {{dataset, task}} with a dataset "
                                 f"of the profile ({names})")
        for key in ("parallel", "threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"{where}.{key}: must be an integer >= 1, got {getattr(self, key)!r}")

    def notebook_parameters(self, notebook: str, declared: set[str] | None = None) -> dict:
        """The parameters ``notebook`` receives: the shared ones it declares, then its own section."""
        base = {"threads": self.threads, **self.parameters}
        if declared is not None:
            base = {k: v for k, v in base.items() if k in declared}
        own = self.notebooks.get(notebook, {})
        _check_declared(own, declared, f"notebooks.{notebook}", "the notebook")
        return {**base, **own}

    def method_train_parameters(self, method: str, shared: dict, declared: set[str] | None = None) -> dict:
        """``30_train``'s parameters for ``method``: ``shared`` with the method's own section laid over it
        (mappings are merged key by key, any other value replaces the shared one)."""
        own = self.method_parameters.get(method, {})
        _check_declared(own, declared, f"method_parameters.{method}", "30_train")
        return merge_overrides(shared, own)

    def method_seeds(self, method: str) -> tuple[int, ...]:
        """The seeds ``method`` is trained with (seed 0 alone unless ``seeds`` names it)."""
        return tuple(self.seeds.get(method, (0,)))


def _mapping(data: dict, key: str, where: str) -> dict:
    mapping = data.get(key) or {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}.{key}: expected a mapping method -> value")
    return mapping


def _notebook_sections(notebooks: dict, where: str) -> dict:
    """Per-notebook parameter sections, each naming a known notebook and holding a mapping."""
    if not isinstance(notebooks, dict):
        raise ValueError(f"{where}.notebooks: expected a mapping notebook -> parameters")
    bad = sorted(set(notebooks) - set(NOTEBOOKS))
    if bad:
        raise ValueError(f"{where}.notebooks: unknown notebook(s) {bad}; known: {list(NOTEBOOKS)}")
    for name, extra in notebooks.items():
        if not isinstance(extra or {}, dict):
            raise ValueError(f"{where}.notebooks.{name}: expected a mapping of parameters")
    return {k: dict(v or {}) for k, v in notebooks.items()}


def _seed_list(values: Any, where: str) -> tuple[int, ...]:
    values = [values] if isinstance(values, int) else list(values or [])
    if not values or not all(isinstance(v, int) and v >= 0 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{where}: expected distinct integers >= 0, got {values!r}")
    return tuple(values)


def _check_declared(section: dict, declared: set[str] | None, where: str, notebook: str) -> None:
    """Refuse names in a profile section that the notebook's parameters cell does not declare."""
    unknown = sorted(set(section) - declared) if declared is not None else []
    if unknown:
        raise ValueError(f"{where}: {unknown} not parameters of {notebook} (it declares {sorted(declared)})")


def real_data_available(root: Path | None = None) -> bool:
    """Whether the shared folder holds every dataset the real-data profile reads."""
    shared = shared_data_root(root)
    return all((shared / name).is_dir() and any((shared / name).iterdir()) for name in REAL_DATASETS)


def _choose_data(path: Path, data: dict, root: Path) -> tuple[Path, dict, str]:
    """The profile to run (``path`` or its ``real_data`` profile when the shared datasets are there),
    its contents and a phrase on the data it uses."""
    real = data.get("real_data")
    if not real:
        return path, data, "as configured"
    shared = shared_data_root(root)
    forced = os.environ.get(DATA_CHOICE_ENV, "").strip().lower()
    if forced != "synthetic" and real_data_available(root):
        real_path = Path(real) if Path(real).is_absolute() else root / real
        if not real_path.is_file():
            raise FileNotFoundError(f"profile {path}: real_data profile {real_path}: no such file")
        chosen = dict(read_yaml(real_path) or {})
        chosen.pop("real_data", None)
        return real_path, chosen, f"real faces from {shared}"
    why = f"{DATA_CHOICE_ENV}=synthetic" if forced == "synthetic" else f"{shared} lacks one of {list(REAL_DATASETS)}"
    return path, data, f"synthetic faces ({why})"


def load_profile(path: str | os.PathLike, overrides: list[str] | None = None) -> Profile:
    """A profile from YAML, with ``KEY=VALUE`` overrides (``faceprompt.config.parse_overrides``): a
    profile field by its name, any other key a shared notebook parameter (dotted keys reach into mappings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"profile {path}: no such file")
    try:
        root = project_root(path.resolve().parent)
    except FileNotFoundError:
        root = Path.cwd()
    path, data, source = _choose_data(path, dict(read_yaml(path) or {}), root)
    data = fill_shared(data, shared_data_root(root))
    fields = {f.name for f in dataclasses.fields(Profile)} - {"data_source"}
    for key, value in parse_overrides(overrides).items():
        if key in fields:
            data = merge_overrides(data, {key: value})
        else:
            data["parameters"] = merge_overrides(data.get("parameters") or {}, {key: value})
    return dataclasses.replace(Profile.from_dict(data, where=f"profile {path}"), data_source=source)


# --- jobs ----------------------------------------------------------------------------------------------

@dataclass
class Job:
    """One notebook execution: which source, with which parameters, into which file."""

    notebook: str
    output: str  # file stem in executed_dir
    parameters: dict
    label: str


def declared_parameters(source: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell."""
    import ast

    import jupytext

    notebook = jupytext.read(source)
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    raise ValueError(f"{source}: no cell tagged 'parameters'")


def plan(profile: Profile, root: Path) -> list[list[Job]]:
    """The jobs of each stage, in order."""
    stages = []
    for stage in STAGES:
        jobs = []
        for notebook in stage:
            declared = declared_parameters(root / "notebooks" / f"{notebook}.py")
            params = profile.notebook_parameters(notebook, declared)
            if notebook == "30_train":
                from faceprompt.book.methods import run_name

                for method in profile.methods:
                    method_params = profile.method_train_parameters(method, params, declared)
                    for seed in profile.method_seeds(method):
                        suffix = run_name(method, seed)[len(run_name(method)):]
                        extra = {"seed": seed} if method in profile.seeds else {}
                        jobs.append(Job(notebook, f"30_train_{run_name(method)}{suffix}",
                                        {**method_params, "method": method, **extra},
                                        f"30_train ({method}, seed {seed})" if extra else f"30_train ({method})"))
            else:
                jobs.append(Job(notebook, notebook, params, notebook))
        stages.append(jobs)
    return stages


def code_fingerprint(root: Path) -> str:
    """A hash of the package and data-preparation sources (and embedded model files by name and size)."""
    h = hashlib.sha256()
    for folder in FINGERPRINT_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.name == "pipeline.py" \
                    or path.relative_to(root).as_posix() == SELF:
                continue  # the build itself does not shape any notebook's output
            h.update(str(path.relative_to(root)).encode())
            if path.suffix in (".py", ".json", ".yaml", ".yml", ".txt"):
                h.update(path.read_bytes())
            else:
                h.update(str(path.stat().st_size).encode())
    return h.hexdigest()


def job_stamp(job: Job, root: Path, code: str, upstream: str) -> str:
    source = (root / "notebooks" / f"{job.notebook}.py").read_bytes()
    payload = json.dumps({"params": job.parameters, "code": code, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(source + payload.encode()).hexdigest()


def to_ipynb(source: Path, target: Path) -> Path:
    """The jupytext source as a notebook file (what papermill executes)."""
    import jupytext

    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(jupytext.read(source), target, fmt="ipynb")
    return target


def execute(job: Job, root: Path, profile: Profile, inputs: Path, executed: Path) -> tuple[Job, float, str]:
    """Run one notebook with papermill in a fresh kernel (working directory: the project root)."""
    import yaml

    source = inputs / f"{job.notebook}.ipynb"
    output = executed / f"{job.output}.ipynb"
    params_file = inputs / f"{job.output}.params.yaml"
    params_file.write_text(yaml.safe_dump(job.parameters, sort_keys=False))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS=str(profile.threads), MKL_NUM_THREADS=str(profile.threads),
               TQDM_DISABLE="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    command = [sys.executable, "-m", "papermill", str(source), str(output), "-f", str(params_file),
               "--cwd", str(root), "-k", "python3", "--no-progress-bar", "--log-level", "WARNING"]
    print(f"[book]    ... {job.label}: running", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-30:])
        raise RuntimeError(f"{job.label} failed after {seconds:.0f} s (executed notebook: {output}):\n{tail}")
    return job, seconds, str(output)


def ensure_chapters(root: Path) -> list[str]:
    """Placeholders for chapters other people write, only where they are missing (never committed)."""
    made = []
    for rel, text in PLACEHOLDER_CHAPTERS.items():
        path = root / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            made.append(rel)
    return made


def build_book(root: Path, strict: bool = True) -> float:
    """``jupyter-book build`` of the project root into ``_build/html`` (warnings as errors when ``strict``)."""
    # --all: a chapter quotes glued numbers that Sphinx does not track, so an incremental build could keep
    # the numbers of an older notebook run
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--builder", "html", "--all"]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    start = time.perf_counter()
    # autodoc documents this checkout's package, whatever is installed
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", PYTHONPATH=path)
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    output = (done.stdout or "") + (done.stderr or "")
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    if done.returncode != 0 or warnings:
        print("\n".join(output.strip().splitlines()[-60:]), flush=True)
        raise RuntimeError(f"jupyter-book build failed ({len(warnings)} warning/error line(s))")
    return time.perf_counter() - start


def run(profile: Profile, root: Path, force: bool = False, only: list[str] | None = None,
        book: bool | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Execute the profile's notebooks (skipping up-to-date ones unless ``force``), then build the book."""
    start = time.perf_counter()
    executed = root / profile.executed_dir
    inputs = root / profile.parameters.get("work_dir", "work/book") / "_notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    inputs.mkdir(parents=True, exist_ok=True)
    stamps_path = executed / STAMP_FILE
    stamps = json.loads(stamps_path.read_text()) if stamps_path.is_file() else {}
    code = code_fingerprint(root)
    stages = plan(profile, root)
    total = sum(len(s) for s in stages)
    print(f"[book] data: {profile.data_source}; datasets "
          f"{[d['name'] if isinstance(d, dict) else d for d in profile.parameters.get('datasets', [])]}, "
          f"backbone {profile.parameters.get('backbone', 'default')}", flush=True)
    print(f"[book] profile {profile.name!r}: {total} notebook runs in {len(stages)} stages, "
          f"{profile.parallel} at a time, {profile.threads} thread(s) each", flush=True)
    planned = {job.output for stage in stages for job in stage}
    for stale in executed.glob("30_train_*.ipynb"):  # runs of methods this profile does not train
        if stale.stem not in planned and not dry_run:
            stale.unlink()
            stamps.pop(stale.stem, None)
    for notebook in NOTEBOOKS:
        to_ipynb(root / "notebooks" / f"{notebook}.py", inputs / f"{notebook}.ipynb")
    upstream, counter, ran = "", 0, []
    for stage in stages:
        todo = []
        for job in stage:
            stamp = job_stamp(job, root, code, upstream)
            job.parameters = dict(job.parameters)
            fresh = (executed / f"{job.output}.ipynb").is_file() and stamps.get(job.output) == stamp
            selected = only is None or job.notebook in only or job.output in only
            if (fresh and not force) or not selected:
                counter += 1
                print(f"[book] {counter:>2}/{total} {job.label}: {'up to date' if fresh else 'not selected'}",
                      flush=True)
            else:
                todo.append((job, stamp))
        if dry_run:
            for job, _ in todo:
                counter += 1
                print(f"[book] {counter:>2}/{total} {job.label}: would run with {job.parameters}", flush=True)
        elif todo:
            with ThreadPoolExecutor(max_workers=profile.parallel) as pool:
                futures = [pool.submit(execute, job, root, profile, inputs, executed) for job, _ in todo]
                for (job, stamp), future in zip(todo, futures):
                    _, seconds, _ = future.result()
                    counter += 1
                    stamps[job.output] = stamp
                    stamps_path.write_text(json.dumps(stamps, indent=1))
                    ran.append(job.output)
                    print(f"[book] {counter:>2}/{total} {job.label}: done in {seconds:.0f} s "
                          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
        upstream = hashlib.sha256((upstream + "".join(stamps.get(j.output, "") for j in stage)).encode()).hexdigest()
    result = {"ran": ran, "notebook_seconds": round(time.perf_counter() - start, 1)}
    if (profile.build_book if book is None else book) and not dry_run:
        made = ensure_chapters(root)
        if made:
            print(f"[book] placeholder chapter(s) for missing {made}", flush=True)
        print("[book] building the book (jupyter-book, warnings as errors) ...", flush=True)
        seconds = build_book(root)
        result["book_seconds"] = round(seconds, 1)
        print(f"[book] book built in {seconds:.0f} s: {root / '_build' / 'html' / 'index.html'}", flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"[book] finished in {result['seconds']:.0f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faceprompt.book.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="configs/book_default.yaml", help="the profile YAML")
    add_set_argument(parser, "a profile field (by its name) or a shared notebook parameter")
    parser.add_argument("--force", action="store_true", help="run every notebook, up to date or not")
    parser.add_argument("--only", nargs="+", help="run only these notebooks (e.g. 40_evaluate 30_train_vpt)")
    parser.add_argument("--no-book", action="store_true", help="run the notebooks, do not build the book")
    parser.add_argument("--book-only", action="store_true", help="only build the book from executed notebooks")
    parser.add_argument("--dry-run", action="store_true", help="print what would run")
    args = parser.parse_args(argv)
    root = project_root()
    os.chdir(root)
    try:
        profile = load_profile(args.profile, args.set)
        if args.book_only:
            ensure_chapters(root)
            print(f"[book] book built in {build_book(root):.0f} s", flush=True)
            return 0
        run(profile, root, force=args.force, only=args.only, book=False if args.no_book else None,
            dry_run=args.dry_run)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"[book] error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
