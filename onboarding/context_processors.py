from onboarding.selectors import user_is_platform


def roles(request):
    return {"is_platform": user_is_platform(request.user) if hasattr(request, "user") else False}
