"""Enterprise domains for the synthetic benchmark: known ones (train/val/mine/eval) and novel ones (eval_novel)."""

from __future__ import annotations

from toolprior.training.benchmark.domains.it_access import ACCESS_REQUESTS, IT_DEVICES
from toolprior.training.benchmark.domains.logistics import INVOICES, PURCHASE_ORDERS, SHIPMENTS
from toolprior.training.benchmark.domains.model import Domain
from toolprior.training.benchmark.domains.novel import DEPLOYMENTS, FLEET_VEHICLES, INSURANCE_CLAIMS, LAB_SAMPLES
from toolprior.training.benchmark.domains.service import CUSTOMER_ACCOUNTS, REFUNDS, SUPPORT_TICKETS
from toolprior.training.benchmark.domains.workplace import CONTRACTS, HR_LEAVE, MEETINGS

KNOWN_DOMAINS: tuple[Domain, ...] = (
    SHIPMENTS,
    SUPPORT_TICKETS,
    INVOICES,
    CUSTOMER_ACCOUNTS,
    ACCESS_REQUESTS,
    PURCHASE_ORDERS,
    HR_LEAVE,
    IT_DEVICES,
    CONTRACTS,
    REFUNDS,
    MEETINGS,
)
NOVEL_DOMAINS: tuple[Domain, ...] = (LAB_SAMPLES, FLEET_VEHICLES, INSURANCE_CLAIMS, DEPLOYMENTS)


def domains_for(schema: str) -> tuple[Domain, ...]:
    """The domains of a schema family: "known" or "novel"."""
    return KNOWN_DOMAINS if schema == "known" else NOVEL_DOMAINS


__all__ = ["KNOWN_DOMAINS", "NOVEL_DOMAINS", "Domain", "domains_for"]
