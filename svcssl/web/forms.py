"""WTForms forms; Flask-WTF adds the CSRF token to every one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length, Optional, Regexp


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(message="Enter your user name."), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=1024)])


class ServiceCheckboxes(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class InstallForm(FlaskForm):
    services = ServiceCheckboxes("Services", validate_choice=False)
    crt = TextAreaField("Certificate")
    crt_file = FileField("or upload a certificate file (PEM, DER or PKCS#12)")
    password = PasswordField("PKCS#12 password or key passphrase")
    key = TextAreaField("Private key")
    key_file = FileField("or upload a private key file")
    key_ref = HiddenField()
    key_source = HiddenField()  # store:owner:spki of a key found by Browse or Autofill (resolved on the server)
    cabundle = TextAreaField("Certificate Authority bundle (optional)")
    cabundle_file = FileField("or upload a CA bundle file")


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token: confirmations, rollbacks, grants, restarts."""


class TokenForm(FlaskForm):
    user = SelectField("For user", validate_choice=True)
    name = StringField("Token name (optional)", validators=[Length(max=50)])
    expires_days = StringField("Expires after (days, optional)",
                               validators=[Optional(), Regexp(r"^\d{1,4}$", message="Between 1 and 3650 days.")])
