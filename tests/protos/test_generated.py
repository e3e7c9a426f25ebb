"""The committed generated modules must match protos/p2p.proto (run `make protos` if this fails)."""
import subprocess
import sys

from tests.procs import ROOT

GENERATED = ("p2p_pb2.py", "p2p_pb2_grpc.py", "p2p_pb2.pyi")


def test_generated_code_is_fresh(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", "protos/p2p.proto"],
        cwd=ROOT, check=True, capture_output=True)
    stale = [name for name in GENERATED
             if (tmp_path / "protos" / name).read_bytes() != (ROOT / "protos" / name).read_bytes()]
    assert not stale, f"stale generated code {stale}: run `make protos` and commit the result"
