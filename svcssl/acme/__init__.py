"""ACME client over the ``acme`` package, with an HTTP-01 responder. No Flask; of the settings only parse_listen."""

from .client import (AcmeConfig, AcmeError, IssuedCertificate, ProfileUnavailable, ari_cert_id, order_certificate,
                     renewal_window)

__all__ = ["AcmeConfig", "AcmeError", "IssuedCertificate", "ProfileUnavailable", "ari_cert_id", "order_certificate",
           "renewal_window"]
