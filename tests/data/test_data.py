"""Tests of jal.data (the package): importing it loads neither TensorFlow nor TensorFlow Datasets."""

from __future__ import annotations




def test_import_does_not_load_tensorflow():
  import subprocess
  import sys
  code = ("import sys, jal.data; "
          "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') for m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
