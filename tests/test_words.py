"""Words that are true (issue 22): one way to say time everywhere, and sentences that agree.

A certificate with 12.2 days left and another expired 12.2 days ago: the table, Details, the banner,
`svcssl list` and the mail all say "12 days", never 13 and never "-12"; every moment has its zone.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

from support import pki
from support.browser import PAGE
from support.panel import HOST
from svcssl import timewords

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def test_durations_are_whole_units_rounded_toward_zero():
    assert timewords.expiry(NOW + timedelta(days=2.9), NOW) == "expires in 2 days"
    assert timewords.expiry(NOW + timedelta(days=1.5), NOW) == "expires in 1 day"
    assert timewords.expiry(NOW + timedelta(hours=5.5), NOW) == "expires in 5 hours"
    assert timewords.expiry(NOW + timedelta(minutes=1), NOW) == "expires in 1 minute"
    assert timewords.expiry(NOW - timedelta(days=12.2), NOW) == "expired 12 days ago"
    assert timewords.expiry(NOW - timedelta(hours=3), NOW) == "expired 3 hours ago"
    assert timewords.whole_days(timedelta(days=-12.2)) == -12 and timewords.whole_days(timedelta(days=2.9)) == 2


def test_moments_carry_their_zone():
    assert timewords.moment(datetime(2026, 12, 7, 4, 10)) == "2026-12-07 04:10 UTC"  # stored naive = UTC
    assert timewords.moment(datetime(2026, 12, 7, 5, 10, tzinfo=timezone(timedelta(hours=1)))) == "2026-12-07 04:10 UTC"
    assert timewords.moment(None) == "never"


def test_every_surface_says_the_same_whole_days(panel, root, run_cli):
    """12.2 days left and 12.2 days expired: "expires in 12 days" and "expired 12 days ago" on the table,
    Details, the banner and `svcssl list`; no "13", no negative day count, no moment without its zone."""
    ca = pki.pki()
    now = datetime.now(timezone.utc)
    key = pki.rsa_key(21)
    soon, _ = ca.leaf([HOST], key=key, not_before=now - timedelta(days=60), not_after=now + timedelta(days=12.2))
    gone, _ = ca.leaf([HOST], key=key, not_before=now - timedelta(days=80), not_after=now - timedelta(days=12.2))
    for service, cert in (("dovecot", soon), ("exim", gone)):
        cert_file = panel.etc / ("dovecot/cert.pem" if service == "dovecot" else "exim/exim.crt")
        key_file = panel.etc / ("dovecot/key.pem" if service == "dovecot" else "exim/exim.key")
        cert_file.write_bytes(pki.pem(cert, ca.intermediate))
        key_file.write_bytes(pki.key_pem(key))
    table = root.get(PAGE).text
    assert re.search(r'id="service-dovecot".*?expires in 12 days', table, re.S)
    assert re.search(r'id="service-exim".*?expired 12 days ago', table, re.S)
    details = root.get(PAGE + "/details/exim").text
    assert "expired 12 days ago" in details and "13 days" not in details and "(-" not in details
    assert re.search(r"Expiration</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC", details)
    assert "“exim” expired 12 days ago" in table  # the banner
    listed = run_cli("list", config=panel.config)
    assert "(expires in 12 days)" in listed.out and "(expired 12 days ago)" in listed.out
    assert "13 days" not in listed.out


def test_cron_lines_in_words():
    assert timewords.cron_words("17 3 * * *") == "every day at 03:17 UTC"
    assert timewords.cron_words("0 4 * * 1") == "every Monday at 04:00 UTC"
    assert timewords.cron_words("*/5 * * * *") == "every 5 minutes"
    assert timewords.cron_words("30 */6 * * *") == "every 6 hours, at minute 30"
    assert timewords.cron_words("0 3 1 * *") == "on the cron schedule “0 3 1 * *” (UTC)"


def test_the_schedule_page_says_the_schedule_in_words_and_the_next_run_with_its_zone(panel, root):
    page = root.get("/scripts2/maintenance").text
    schedule = panel.settings.maintenance.schedule
    assert re.search(r'id="schedule-words">every day at \d\d:\d\d UTC</strong>', page), schedule
    assert re.search(r'<h2>Next run</h2>\s*<p><strong>\d{4}-\d\d-\d\d \d\d:\d\d UTC</strong>', page)
    # switches in positive words; the touch file is named, not the subject
    assert "Automatic hostname certificates: <span class=\"switch-state\">on</span>" in page
    assert "Turn off Automatic hostname certificates" in page


def test_details_history_marks_what_is_on_disk_and_an_outside_change(panel, root):
    """After an outside change the history does not call svcssl's last install "(on disk now)": the file's
    certificate gets its own row, and Why says the files were changed outside svcssl."""
    ca = pki.pki()
    key = pki.rsa_key(23)
    before = root.get(PAGE + "/details/dovecot").text
    assert before.count("(on disk now)") == 1 and 'id="outside-change"' not in before
    leaf, _ = ca.leaf([HOST], key=key)
    (panel.etc / "dovecot/cert.pem").write_bytes(pki.pem(leaf, ca.intermediate))
    (panel.etc / "dovecot/key.pem").write_bytes(pki.key_pem(key))
    after = root.get(PAGE + "/details/dovecot").text
    row = re.search(r'<tr class="active outside" id="outside-change">(.*?)</tr>', after, re.S)
    assert row and "(on disk now)" in row.group(1) and "changed outside svcssl" in row.group(1)
    assert after.count("(on disk now)") == 1
    assert "changed outside svcssl" in after.split('id="outside-change"')[0]  # Why says it too


def test_apply_offers_no_expired_certificate_and_finds_a_service_key_written_outside(panel, root):
    ca = pki.pki()
    key = pki.rsa_key(23)
    gone, _ = ca.leaf([HOST], key=key, not_before=datetime.now(timezone.utc) - timedelta(days=90),
                      not_after=datetime.now(timezone.utc) - timedelta(days=2))
    (panel.etc / "exim/exim.crt").write_bytes(pki.pem(gone, ca.intermediate))
    (panel.etc / "exim/exim.key").write_bytes(pki.key_pem(key))
    table = root.get(PAGE).text
    exim_row = re.search(r'<tr id="service-exim".*?</tr>', table, re.S).group(0)
    assert "apply_from=exim" not in exim_row and "apply_from=dovecot" in table
    refused = root.get(PAGE + "/install?apply_from=exim", follow_redirects=True)  # back to the table, said in a note
    assert "expired 2 days ago: it cannot be applied" in html.unescape(refused.text)
    # dovecot's files changed outside svcssl: Apply still finds the key in dovecot's own key file
    current, _ = ca.leaf([HOST], key=key)
    (panel.etc / "dovecot/cert.pem").write_bytes(pki.pem(current, ca.intermediate))
    (panel.etc / "dovecot/key.pem").write_bytes(pki.key_pem(key))
    page = html.unescape(root.get(PAGE + "/install?apply_from=dovecot").text)
    assert "The matching key was found in a service's files" in page and "PRIVATE KEY" not in page
