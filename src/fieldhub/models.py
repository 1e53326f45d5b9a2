"""Imports every table so that Base.metadata is complete (Alembic and tests read it from here)."""

from fieldhub.core.accounts.models import ApiToken, LoginSession, Tenant, User  # noqa: F401
from fieldhub.core.customers.models import Customer  # noqa: F401
from fieldhub.core.estimates.models import Estimate, EstimateLine  # noqa: F401
from fieldhub.core.events import DomainEventRow  # noqa: F401
from fieldhub.core.invoices.models import Invoice, InvoiceLine  # noqa: F401
from fieldhub.core.items.models import Item, TaxRate  # noqa: F401
from fieldhub.core.jobs.models import Job, TimeBlock  # noqa: F401
from fieldhub.core.payments.models import Payment, Refund  # noqa: F401
from fieldhub.db import Base

metadata = Base.metadata
