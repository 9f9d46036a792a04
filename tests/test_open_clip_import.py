"""open_clip imported without transformers and with the compiler deferred (faceprompt.backbones.open_clip_import)."""
from __future__ import annotations

import subprocess
import sys


def run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_a_compiler_submodule_asked_for_while_the_stand_ins_stand_brings_the_real_compiler():
    lines = run("import sys, torch\n"
                "from faceprompt.backbones import open_clip_import as o\n"
                "stand = o._stand_ins(); sys.modules.update(stand); finder = o._RealSubmodules(stand)\n"
                "sys.meta_path.insert(0, finder)\n"
                "import torch._dynamo.config as config\n"
                "print(hasattr(config, 'cache_size_limit'), sys.modules['torch._dynamo'] is not stand['torch._dynamo'])\n"
                "print(callable(sys.modules['torch._dynamo'].optimize))")
    assert lines[-2:] == ["True True", "True"]


def test_a_stand_in_name_loads_the_real_compiler_and_dunders_do_not():
    lines = run("import sys, inspect, torch\n"
                "from faceprompt.backbones import open_clip_import as o\n"
                "stand = o._stand_ins(); sys.modules.update(stand)\n"
                "print(hasattr(stand['torch._dynamo'], '__file__'), 'torch._dynamo' in sys.modules)\n"
                "fn = stand['torch._dynamo'].optimize\n"
                "print(sys.modules['torch._dynamo'] is not stand['torch._dynamo'], callable(fn))")
    assert lines[-2:] == ["False True", "True True"]
