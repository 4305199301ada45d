"""REST API of a product's health: freshness and checks per output port, and its state."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors as onboarding
from portal.errors import error_responses
from provisioning import health


class CheckOutput(serializers.Serializer):
    check = serializers.CharField(help_text="rows_min, not_null:<column> or unique:<columns>")
    passed = serializers.BooleanField()
    detail = serializers.CharField()


class PortHealthOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="table or feed")
    freshness = serializers.CharField(allow_null=True, help_text="the oldest acceptable age, as declared")
    last_updated = serializers.DateTimeField(
        allow_null=True, help_text="table: the end of the last succeeded run that wrote it; feed: its newest file")
    stale = serializers.BooleanField()
    checks = CheckOutput(many=True, help_text="as measured by the worker after the last run")
    rows = serializers.IntegerField(allow_null=True, help_text="rows after the last run; null when absent")
    files = serializers.IntegerField(allow_null=True, help_text="a feed's files")
    measured_at = serializers.DateTimeField(allow_null=True)
    run = serializers.IntegerField(allow_null=True, help_text="the run after which it was measured")


class LastRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    exit_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField()


class HealthOutput(serializers.Serializer):
    state = serializers.ChoiceField(choices=["ok", "stale", "failing"])
    reasons = serializers.ListField(child=serializers.CharField())
    outputs = PortHealthOutput(many=True)
    last_run = LastRunOutput(allow_null=True)


class ProductHealthApi(APIView):
    @extend_schema(responses={200: HealthOutput, **error_responses(400, 403, 404)},
                   description="The product's health now: `failing` when its last run or its last checks failed, "
                               "`stale` when a table or feed port is older than its freshness, else `ok`; each "
                               "port's rows and checks as the worker measured them after the last run.")
    def get(self, request, slug):
        return Response(HealthOutput(health.report(onboarding.product_get(slug))).data)
