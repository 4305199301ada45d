"""A view that meets a backing service going away answers 503 with Retry-After, logged as one
warning: not a 500 with a traceback (and an e-mail to ADMINS) for every request of an outage."""
import logging

from portal.views import is_unavailable, unavailable

logger = logging.getLogger(__name__)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_unavailable(exception):
            return None
        first_line = next(iter(str(exception).strip().splitlines()), "")
        logger.warning("%s %s: a backing service is unavailable (%s: %s); answered 503", request.method,
                       request.path, type(exception).__name__, first_line)
        response = unavailable(request)
        response._has_been_logged = True  # Django would log every 5xx as an error once more
        return response
