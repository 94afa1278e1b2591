"""Size limits: no loader reads, inflates or allocates past ``max_bytes`` before saying so."""

from __future__ import annotations

import gzip
import re
import struct
import zipfile
import zlib

import numpy as np
import pytest

from fungrad import data

MIB = 2**20


# --------------------------------------------------------------------------- helpers


def gzip_of_zeros(path, size: int, *, prefix: bytes = b""):
    """A gzip file holding ``prefix`` then ``size`` zero bytes, written without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as file:
        file.write(compressor.compress(prefix))
        zeros = bytes(MIB)
        for _ in range(size // MIB):
            file.write(compressor.compress(zeros))
        file.write(compressor.flush())
    return path


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def npy_with_declared_shape(shape: tuple[int, ...], payload: bytes) -> bytes:
    """A ``.npy`` file whose header declares ``shape`` of float64, followed by ``payload``."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


@pytest.fixture
def inflated(monkeypatch):
    """The total number of bytes gzip streams hand out during a test, in ``inflated[0]``."""
    total = [0]
    read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        chunk = read(self, size)
        total[0] += len(chunk)
        return chunk

    monkeypatch.setattr(gzip.GzipFile, "read", counting_read)
    return total


def cap_error(path, max_bytes: int):
    """pytest.raises for the over-the-cap error: it names the file, the cap and the way out."""
    pattern = f"^{re.escape(str(path))}: .*max_bytes={max_bytes}.*pass a larger max_bytes"
    return pytest.raises(ValueError, match=pattern)


# --------------------------------------------------------------------------- the default cap


def test_default_cap_is_four_gib_and_public():
    assert data.MAX_BYTES == 4 * 2**30
    assert "MAX_BYTES" in data.__all__


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), (True, TypeError),
                                        ("1e9", TypeError), (1.5e9, TypeError)])  # fmt: skip
def test_max_bytes_must_be_a_positive_integer(tmp_path, bad, error):
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n3,4,1\n")
    for load in (data.load, data.load_csv, data.load_npz):
        with pytest.raises(error, match="^max_bytes: expected a positive integer"):
            load(str(path), max_bytes=bad)
    with pytest.raises(error, match="^max_bytes"):
        data.load_rows(str(path), n_features=2, max_bytes=bad)


# --------------------------------------------------------------------------- gzip


def test_gzip_bomb_stops_at_the_cap_without_inflating_it_all(tmp_path, inflated):
    bomb = gzip_of_zeros(tmp_path / "bomb.csv.gz", 50 * MIB, prefix=b"1,2,0\n")
    assert bomb.stat().st_size < MIB // 4
    with cap_error(bomb, MIB):
        data.load_csv(bomb, max_bytes=MIB)
    assert 0 < inflated[0] <= 2 * MIB


def test_gzip_bomb_message_says_what_inflates_and_how_far(tmp_path):
    bomb = gzip_of_zeros(tmp_path / "bomb.csv.gz", 4 * MIB)
    with pytest.raises(ValueError, match=r"inflates to more than 1\.0 MiB \(max_bytes=1048576\)"):
        data.load(str(bomb), max_bytes=MIB)
    with cap_error(bomb, MIB):
        data.load_rows(str(bomb), n_features=2, max_bytes=MIB)


def test_gzip_idx_bomb_after_a_valid_header(tmp_path, inflated):
    images = gzip_of_zeros(tmp_path / "images", 20 * MIB, prefix=idx_header(0x08, (1, 2, 2)))
    labels = tmp_path / "labels"
    labels.write_bytes(idx_header(0x08, (1,)) + b"\x00")
    with cap_error(images, MIB):
        data.load_idx(images, labels, max_bytes=MIB)
    assert inflated[0] <= 2 * MIB


def test_plain_file_over_the_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n" * 1000)
    with pytest.raises(ValueError, match=r"the file is 5\.9 KiB, more than 1000 bytes"):
        data.load_csv(path, max_bytes=1000)
    assert data.load_csv(path, max_bytes=6000).x.shape == (1000, 2)


# --------------------------------------------------------------------------- npz


def write_npz(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_npz_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy_with_declared_shape((10**12,), bytes(16)))
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(2, np.int64))
    for load in (data.load_npz, data.load):
        with pytest.raises(ValueError, match=r"array 'x' is truncated.*\(1000000000000,\)"):
            load(str(path))
    with pytest.raises(ValueError, match="array 'x' is truncated"):
        data.load_rows(str(path), n_features=1)


def test_npz_members_inflating_past_the_cap(tmp_path):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((1000, 100)), y=np.zeros(1000, np.int64))
    assert path.stat().st_size < 10_000
    with cap_error(path, 100_000):
        data.load_npz(path, max_bytes=100_000)
    with pytest.raises(ValueError, match=r"the arrays 'x', 'y' inflate to 789\.3 KiB"):
        data.load(str(path), max_bytes=100_000)
    assert data.load_npz(path, max_bytes=10**6).x.shape == (1000, 100)


def test_npz_damaged_header_is_a_clean_error(tmp_path):
    path = write_npz(tmp_path / "d.npz", {"x.npy": b"\x93NUMPY\x01\x00\xff", "y.npy": b""})
    with pytest.raises(ValueError, match="damaged array in the .npz archive"):
        data.load_npz(path)


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_huge_declared_dimensions_are_refused_before_allocating(tmp_path, gzipped):
    header = idx_header(0x0E, (2**32 - 1, 2**32 - 1, 3))
    images = tmp_path / "images"
    images.write_bytes(gzip.compress(header + bytes(24)) if gzipped else header + bytes(24))
    labels = tmp_path / "labels"
    labels.write_bytes(idx_header(0x08, (1,)) + b"\x00")
    # A plain file's length is known first (truncated); gzip data's only once inflated (cap).
    message = r"IDX data truncated" if not gzipped else r"the header declares shape .* bytes"
    with pytest.raises(ValueError, match=f"^{re.escape(str(images))}: {message}"):
        data.load_idx(images, labels)
    with pytest.raises(ValueError, match=message):
        data.load_rows(str(images), labels=str(labels), n_features=1)


def test_idx_declared_size_over_the_cap(tmp_path):
    images = tmp_path / "images"
    images.write_bytes(idx_header(0x08, (4, 10, 10)) + bytes(400))
    labels = tmp_path / "labels"
    labels.write_bytes(idx_header(0x08, (4,)) + bytes(4))
    with pytest.raises(ValueError, match=r"the header declares shape \(4, 10, 10\) of uint8"):
        data.load_idx(gzip_copy(images), labels, max_bytes=300)
    assert data.load_idx(images, labels, max_bytes=500).x.shape == (4, 100)


def gzip_copy(path):
    copy = path.with_name(path.name + ".gz")
    copy.write_bytes(gzip.compress(path.read_bytes()))
    return copy


# --------------------------------------------------------------------------- normal files


def test_normal_files_load_with_the_default_cap(tmp_path):
    digits = data.load("digits")
    npz = tmp_path / "d.npz"
    np.savez(npz, x=digits.x, y=digits.y)
    csv = tmp_path / "d.csv.gz"
    table = np.column_stack([digits.x, digits.y]).astype(int)
    csv.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in table).encode()))
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.write_bytes(idx_header(0x08, (1797, 8, 8)) + digits.x.astype(np.uint8).tobytes())
    labels.write_bytes(idx_header(0x08, (1797,)) + digits.y.astype(np.uint8).tobytes())
    loads = (
        data.load(str(npz)),
        data.load(str(csv)),
        data.load(str(gzip_copy(images)), labels=str(labels)),
    )
    for loaded in loads:
        np.testing.assert_array_equal(loaded.x, digits.x)
        np.testing.assert_array_equal(loaded.y, digits.y)
