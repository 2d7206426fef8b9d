"""Requirement–capability analysis: the constraint checker the provider calls at plan time.

    analyse(needs, nodes)        every way one service cannot be met, with attribute paths
    check_plan(services, nodes)  whether all services of a plan fit together (bin packing)

See README.md in this folder for the message format.
"""

from control_plane.analysis.capacity import check_plan, plan_packing
from control_plane.analysis.requirements import ServiceNeeds, Violation, analyse

__all__ = ["ServiceNeeds", "Violation", "analyse", "check_plan", "plan_packing"]
