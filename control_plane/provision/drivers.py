"""libcloud compute drivers for cloud pools: open one from a pool's spec, describe its size, and
turn the cloud's errors into messages a user can act on (never carrying a key).

    cloud = Cloud.open(spec, key, secret)
    size = cloud.size("t3.large")            # SizeInfo(cpu_cores=2, memory_mb=8192, price_per_hour=0.0832)
    cloud.check_image("ami-12c6146b")        # CloudError naming the image when the API does not know it
    node = cloud.create(name, token, user_data, tags)
    cloud.list(tags={"stratum-pool": "burst"})
    cloud.destroy(instance_id)

Everything goes through libcloud's own driver classes. EC2 requests are signed with SigV4 (every
current region needs it); a pool's `driver_options` may override host, port, secure and
signature_version (a private endpoint, or a test's moto server).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stratum.validation import MAX_REF, check_text, shown, shown_key

# libcloud (and the requests stack under it) is imported where a pool uses it: a control plane
# without cloud pools, and every start of one, skips that import.
if TYPE_CHECKING:
    from libcloud.compute.base import Node, NodeSize

log = logging.getLogger("stratum.provision.cloud")

POOL_TAG, TOKEN_TAG = "stratum-pool", "stratum-token"  # on every VM: which pool, and its idempotency token
_OPTION_TYPES = {"host": str, "port": int, "secure": bool, "signature_version": str}


class CloudError(Exception):
    """A cloud API call failed; `code` is the API's error code when it gave one."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SizeInfo:
    id: str
    cpu_cores: float
    memory_mb: int
    price_per_hour: float  # 0: unknown


def parse_options(options: dict[str, str]) -> tuple[dict, list[tuple[str, str]]]:
    """driver_options as the driver wants them, and problems as (attribute path, message)."""
    out, problems = {}, []
    for k, v in sorted(options.items()):
        path = f'driver_options["{shown_key(k)}"]'
        kind = _OPTION_TYPES.get(k)
        if kind is None:
            problems.append((path, f"unknown driver option {shown(k)}; known: {', '.join(sorted(_OPTION_TYPES))}"))
        elif len(v) > MAX_REF:
            problems += check_text(v, path, MAX_REF)
        elif kind is int:  # the one int option is a port
            try:
                out[k] = int(v)
            except ValueError:
                problems.append((path, f"{k} = {shown(v)}: give a whole number"))
            else:
                if not 1 <= out[k] <= 65535:
                    problems.append((path, f"{k} = {shown(v)}: give a port from 1 to 65535"))
        elif kind is bool:
            if str(v).lower() not in ("true", "false"):
                problems.append((path, f"{k} = {shown(v)}: give true or false"))
            else:
                out[k] = str(v).lower() == "true"
        else:
            out[k] = v
    return out, problems


def driver_class(name: str):
    """The libcloud driver class for a name such as "ec2"; CloudError naming the choices if unknown."""
    from libcloud.common.types import LibcloudError
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    provider = getattr(Provider, name.upper(), None) if name else None
    try:
        return get_driver(provider if provider is not None else name)
    except (AttributeError, LibcloudError) as e:
        raise CloudError(f"unknown libcloud compute driver {shown(name)}: {e}") from None


def _describe(e: Exception) -> CloudError:
    """A cloud error without credentials: the API's code and message, or what kind of failure it was."""
    from libcloud.common.exceptions import BaseHTTPError
    from libcloud.common.types import InvalidCredsError, MalformedResponseError

    if isinstance(e, CloudError):
        return e
    if isinstance(e, InvalidCredsError):
        return CloudError("the cloud rejected the credentials read from Vault", code="InvalidCredentials")
    if isinstance(e, BaseHTTPError):
        text = (str(getattr(e, "message", "") or "").strip().splitlines() or [""])[0]  # "Code: message" for EC2
        code = text.split(":", 1)[0].strip() if ":" in text else ""
        return CloudError(f"the cloud API answered {getattr(e, 'code', '?')}: {text[:300] or '(no message)'}", code=code)
    if isinstance(e, MalformedResponseError):
        return CloudError(f"the cloud API sent an answer libcloud could not read: {e.value[:200] if e.value else ''}")
    if isinstance(e, OSError):
        return CloudError(f"cannot reach the cloud API: {type(e).__name__}: {e}", code="Unreachable")
    return CloudError(f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")


class Cloud:
    def __init__(self, driver, region: str, prices: dict[str, float] | None = None):
        self.driver, self.region = driver, region
        self.prices = dict(prices or {})
        self._sizes: dict[str, NodeSize] | None = None

    @classmethod
    def open(cls, driver: str, region: str, key: str, secret: str, options: dict[str, str] | None = None,
             prices: dict[str, float] | None = None) -> "Cloud":
        kwargs, problems = parse_options(options or {})
        if problems:
            raise CloudError("; ".join(f"{p}: {m}" for p, m in problems))
        klass = driver_class(driver)
        if driver.lower() == "ec2":
            kwargs.setdefault("signature_version", "4")
        try:
            return cls(klass(key, secret, region=region, **kwargs) if region else klass(key, secret, **kwargs),
                       region, prices)
        except ValueError as e:  # libcloud: "Invalid region: ..."
            raise CloudError(f"{driver}: {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever the driver raised, without the keys
            raise _describe(e) from None

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - libcloud raises many kinds; all become CloudError
            raise _describe(e) from None

    # -- sizes and images ---------------------------------------------------------------------
    def _size(self, size_id: str) -> NodeSize:
        if self._sizes is None:
            self._sizes = {s.id: s for s in self._call(self.driver.list_sizes)}
        s = self._sizes.get(size_id)
        if s is None:
            close = sorted(x for x in self._sizes if x.split(".")[0] == size_id.split(".")[0])[:8]
            raise CloudError(f"size {size_id!r} is not offered in {self.region or 'this region'}"
                             + (f"; sizes of that family: {', '.join(close)}" if close else ""), code="InvalidSize")
        return s

    def size(self, size_id: str) -> SizeInfo:
        s = self._size(size_id)
        return size_info(s, self.prices.get(size_id))

    def check_image(self, image_id: str) -> None:
        try:
            self._call(self.driver.get_image, image_id)
        except CloudError as e:
            raise CloudError(f"image {image_id!r}: {e}", code=e.code) from None

    # -- nodes --------------------------------------------------------------------------------
    def create(self, name: str, size_id: str, image_id: str, token: str, user_data: str, tags: dict[str, str]) -> Node:
        from libcloud.compute.base import NodeImage
        from libcloud.compute.types import Provider

        size = self._size(size_id)
        image = NodeImage(id=image_id, name=image_id, driver=self.driver)
        kwargs = {"ex_userdata": user_data, "ex_metadata": tags}
        if self.driver.type == Provider.EC2:
            kwargs["ex_clienttoken"] = token  # EC2 returns the same instance for a retried request
        return self._call(self.driver.create_node, name=name, size=size, image=image, **kwargs)

    def list(self, tags: dict[str, str]) -> list[Node]:
        """Nodes carrying all these tags (EC2 filters on the server; others in here)."""
        from libcloud.compute.types import Provider

        if self.driver.type == Provider.EC2:
            nodes = self._call(self.driver.list_nodes, ex_filters={f"tag:{k}": v for k, v in tags.items()})
        else:
            nodes = self._call(self.driver.list_nodes)
        return [n for n in nodes if all((n.extra.get("tags") or {}).get(k) == v for k, v in tags.items())]

    def destroy(self, node: Node) -> bool:
        return bool(self._call(self.driver.destroy_node, node))

    def destroy_id(self, instance_id: str, name: str = "") -> bool:
        """Terminate by id, without listing first (one API call)."""
        from libcloud.compute.base import Node
        from libcloud.compute.types import NodeState

        node = Node(id=instance_id, name=name or instance_id, state=NodeState.UNKNOWN, public_ips=[], private_ips=[],
                    driver=self.driver)
        return self.destroy(node)


def size_info(s: NodeSize, price_override: float | None = None) -> SizeInfo:
    """Cores, MiB and hourly price of a libcloud NodeSize (EC2 gives vcpu in extra)."""
    extra = s.extra or {}
    cores = extra.get("vcpu") or extra.get("cpu") or extra.get("cpus") or getattr(s, "vcpus", None) or 0
    try:
        cores = float(cores)
    except (TypeError, ValueError):
        cores = 0.0
    price = price_override if price_override is not None else (s.price or 0.0)
    return SizeInfo(s.id, cores, int(s.ram or 0), float(price))
