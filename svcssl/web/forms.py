"""WTForms forms; Flask-WTF adds the CSRF token to every one."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length, Optional, Regexp


class BoundedEcho:
    """A field that is never rendered back longer than its bound: a 10 MB paste is not echoed."""

    def __init__(self, label=None, validators=None, *, echo_limit: int | None = None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self._echo_limit = echo_limit

    @property
    def echo_limit(self) -> int:
        return self._echo_limit

    def _value(self):
        value = super()._value()
        return value if len(value) <= self.echo_limit else ""


class BoundedStringField(BoundedEcho, StringField):
    pass


class BoundedTextAreaField(BoundedEcho, TextAreaField):
    pass


class PemTextAreaField(BoundedEcho, TextAreaField):
    """A PEM text area, bounded by the input limit (larger pastes are refused anyway)."""

    @property
    def echo_limit(self) -> int:
        return current_app.extensions["svcssl"].settings.limits.max_input_bytes


class PanelForm(FlaskForm):
    """The panel's forms: a field with errors renders with aria-invalid and names its error text
    (the ids field_errors gives them) in aria-describedby, so a screen reader says both."""

    class Meta(FlaskForm.Meta):
        def render_field(self, field, render_kw):
            if field.errors:
                render_kw = dict(render_kw)
                render_kw.setdefault("aria-invalid", "true")
                render_kw.setdefault("aria-describedby", f"{field.id}-error")
            return super().render_field(field, render_kw)


class LoginForm(PanelForm):
    username = BoundedStringField("User name", validators=[DataRequired(message="Enter your user name."),
                                                           Length(max=64)], echo_limit=64)
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=1024)])


class ServiceCheckboxes(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class InstallForm(PanelForm):
    services = ServiceCheckboxes("Services", validate_choice=False)
    crt = PemTextAreaField("Certificate")
    crt_file = FileField("or upload a certificate file (PEM, DER or PKCS#12)")
    password = PasswordField("PKCS#12 password or key passphrase")
    key = PemTextAreaField("Private key")
    key_file = FileField("or upload a private key file")
    key_ref = HiddenField()
    key_source = HiddenField()  # store:owner:spki of a key found by Browse or Autofill (resolved on the server)
    cabundle = PemTextAreaField("Certificate Authority bundle (optional)")
    cabundle_file = FileField("or upload a CA bundle file")
    allow_untrusted = BooleanField("Install it anyway: clients will not trust it; the next maintenance run will "
                                   "replace it unless its root is added to [trust] ca_file")
    allow_dane_mismatch = BooleanField("Install it anyway: its key matches none of the validated TLSA records, so "
                                       "DANE senders will refuse mail until the records above are published")


class NewUserForm(PanelForm):
    username = BoundedStringField("User name", validators=[DataRequired(message="Enter a user name."), Length(max=32)],
                                  echo_limit=32)
    password = PasswordField("Password", validators=[DataRequired(message="Enter a password."), Length(max=1024)])
    confirm = PasswordField("Password again", validators=[DataRequired(message="Enter the password again.")])


class PasswordForm(PanelForm):
    password = PasswordField("New password", validators=[DataRequired(message="Enter a password."), Length(max=1024)])
    confirm = PasswordField("New password again", validators=[DataRequired(message="Enter the password again.")])


class CsrForm(PanelForm):
    domains = BoundedTextAreaField("Domains (the first is the Common Name; one per line, or separated by spaces)",
                                   validators=[DataRequired(message="Give at least one domain name."),
                                               Length(max=26000, message="At most 100 names of up to 253 characters.")],
                                   echo_limit=26000)
    key_type = SelectField("Key type", validate_choice=True)


class ConfirmForm(PanelForm):
    """A form with nothing but its CSRF token: confirmations, rollbacks, grants, restarts."""


class TokenForm(PanelForm):
    user = SelectField("For user", validate_choice=True)
    name = BoundedStringField("Token name (optional)", validators=[Length(max=50)], echo_limit=50)
    expires_days = BoundedStringField("Expires after (days, optional)", echo_limit=4,
                                      validators=[Optional(), Regexp(r"^\d{1,4}$", message="Between 1 and 3650 days.")])
    metrics_only = BooleanField("Metrics only: reads /metrics (Prometheus) and nothing else; the API refuses it")
