"""Every answer under /api/ is the API's JSON, a path that matches no route included."""
import pytest

pytestmark = pytest.mark.django_db


def test_an_api_path_that_matches_nothing_answers_the_apis_json_404(api, member, client):
    response = api(member).get("/api/v1/products/caf\u00e9/history/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "errors": {}}
    assert client.get("/no-such-page/").status_code == 404  # pages keep Django's page
