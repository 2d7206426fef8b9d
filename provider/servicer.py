"""`tf`'s ProviderServicer with the few behaviours Stratum needs, by subclassing.

- Destroy plans: we advertise (through tf) the plan_destroy capability, so
  Terraform sends PlanResourceChange with a null proposed state; tf 1.2.0 answers
  that with an error. We answer with a null planned state.
- Create plans: tf consults Resource.plan only for updates. Stratum resources
  check their configuration with the control plane at plan time, on create too,
  so Resource.plan is called for creates with current=None.
- A safety net: any exception escaping an RPC becomes an error diagnostic
  instead of a "plugin did not respond" crash with a traceback in the logs.
"""

from __future__ import annotations

import functools
import logging
import os

from tf.gen import tfplugin_pb2 as pb
from tf.iface import PlanContext
from tf.provider import ProviderServicer, _decode_state, _encode_state
from tf.utils import Diagnostics, read_dynamic_value

from provider.errors import internal_error, redact

log = logging.getLogger("stratum.provider")


class StratumServicer(ProviderServicer):
    def PlanResourceChange(self, request: pb.PlanResourceChange.Request, context):
        if read_dynamic_value(request.proposed_new_state) is None:
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)

        resp = _unwrapped("PlanResourceChange")(self, request, context)
        creating = read_dynamic_value(request.prior_state) is None
        if not creating or any(d.severity == pb.Diagnostic.ERROR for d in resp.diagnostics):
            return resp

        type_name = request.type_name
        attrs, blocks = self._get_res_attrs(type_name), self._get_res_blocks(type_name)
        diags = Diagnostics()
        planned_enc, planned = _decode_state(diags, attrs, blocks, resp.planned_state)
        if not diags.has_errors():
            inst = self.app.new_resource(self._get_res_cls(type_name))
            planned = inst.plan(PlanContext(diags, type_name, changed_fields=set(attrs)), None, planned)
        if diags.has_errors():
            return pb.PlanResourceChange.Response(diagnostics=[*resp.diagnostics, *diags.to_pb()])
        return pb.PlanResourceChange.Response(
            planned_state=_encode_state(attrs, blocks, planned, planned_enc),
            requires_replace=resp.requires_replace,
            diagnostics=[*resp.diagnostics, *diags.to_pb()],
        )


def _unwrapped(name: str):
    """tf's implementation without its decorator that prints tracebacks to stderr."""
    fn = getattr(ProviderServicer, name)
    return getattr(fn, "__wrapped__", fn)


def _guard(name: str, fn):
    response = getattr(pb, name).Response

    @functools.wraps(fn)
    def guarded(self, request, context):
        try:
            return fn(self, request, context)
        except Exception as exc:
            log.error("unexpected error in %s: %s", name, redact(f"{type(exc).__name__}: {exc}"), exc_info=bool(os.environ.get("STRATUM_PROVIDER_DEBUG")))
            return response(diagnostics=[internal_error(exc, name).to_pb()])

    return guarded


for _name in [n for n in dir(ProviderServicer) if n[:1].isupper()]:
    _msg = getattr(pb, _name, None)
    if _msg is None or "diagnostics" not in _msg.Response.DESCRIPTOR.fields_by_name:
        continue
    setattr(StratumServicer, _name, _guard(_name, StratumServicer.__dict__.get(_name) or _unwrapped(_name)))
