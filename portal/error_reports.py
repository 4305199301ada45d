"""Error reports (the debug page, e-mails to ADMINS) that never show a secret.

Django hides values whose *name* looks secret. A URL with a password in it has an innocent name
(`REDIS_URL`, `CELERY_BROKER_URL`, `CACHES`' `LOCATION`, a `DATABASE_URL` in the environment), and a
traceback's local variables are shown as they are unless their function was decorated: this
filter masks the password in every URL and every secret-named local variable as well.
"""
import re

from django.views.debug import SafeExceptionReporterFilter

_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/:@\s]*:)[^/@\s]+(?=@)", re.I)
_QUERY_SECRET = re.compile(r"(?P<keep>[?&][^=&\s]*(?:token|key|secret|pass|sig|auth)[^=&\s]*=)[^&#\s]+", re.I)


class SecretScrubbingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile("API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|CREDENTIAL|PRIVATE|DSN", re.I)

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            value = _URL_PASSWORD.sub(lambda m: m["keep"] + self.cleansed_substitute, value)
            value = _QUERY_SECRET.sub(lambda m: m["keep"] + self.cleansed_substitute, value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleanse_setting(name, value))
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]
