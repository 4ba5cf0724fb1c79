"""Response headers every page gets."""

from django.conf import settings

# No inline script or style anywhere (STYLE.md), so the policy can forbid both.
DEFAULT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Bootstrap draws form controls with data: SVGs.
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # A view may set a stricter policy (e.g. the sandboxed mail body frame).
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = getattr(
                settings, "CALMAIL_CONTENT_SECURITY_POLICY", DEFAULT_POLICY
            )
        return response
