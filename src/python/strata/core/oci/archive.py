"""What the formats written as one tar stream share (docker-archive, oci-archive, rootfs)."""

from strata.core.build.hashing import HashingReader
from strata.core.build.tarstream import TarWriter
from strata.core.errors import InvalidInput

# mtime of every entry of the archives written here (layers carry their own): fixed for
# reproducibility, 1 like the layers' default because some tools read 0 as "unset".
ARCHIVE_MTIME = 1


def add_verified(tar: TarWriter, path: str, size: int, blob_path: str, digest: str) -> None:
    """Streams a blob file into `tar`, hashed on the way: it must be `digest`."""
    with open(blob_path, "rb") as f:
        data = HashingReader(f)
        tar.add_file(path, size, data)
    if data.digest_str() != digest:
        raise InvalidInput(
            f"{blob_path} does not match its digest {digest}: its {size} bytes have digest "
            f"{data.digest_str()}"
        )
