"""A test-only middleware that records the raw request bodies the server receives."""

RECEIVED: list[bytes] = []


class RecordBodies:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST":
            RECEIVED.append(request.body)
        return self.get_response(request)
