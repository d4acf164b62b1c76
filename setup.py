"""Only what pyproject.toml cannot say: ship the top-level templates/ and static/ inside the package.

The checkout keeps them at the top (no build step for the panel's pages and CSS); the wheel maps
them to svcssl/templates and svcssl/static, where svcssl/app.py looks first.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["svcssl", "svcssl.*"]) + ["svcssl.templates", "svcssl.static"],
    package_dir={"svcssl.templates": "templates", "svcssl.static": "static"},
    package_data={"svcssl.templates": ["*", "**/*"], "svcssl.static": ["*", "**/*"]},
)
