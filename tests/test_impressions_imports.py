"""The writer thread must not import pandas: pyarrow's ``to_numpy()`` does on
first use, and in the writer thread that import held the GIL for 130-175 ms
on the first batch, a stall of every request thread of the host."""

from __future__ import annotations

from test_impressions_crash import run_python


def test_logging_and_writing_never_import_pandas(tmp_path):
    proc = run_python("""
        import sys
        from engine.impressions import ImpressionLogger
        from test_impressions import make_record
        with ImpressionLogger(sys.argv[1], batch_records=64) as logger:
            for seq in range(300):  # every optional field, nulls, maps, slices of batches
                logger.log(make_record(seq))
            logger.flush()
            stats = logger.stats
        assert stats.written == 300 and stats.rejected == 0, stats
        print("pandas" in sys.modules)
    """, str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "False", "the logger imported pandas"
