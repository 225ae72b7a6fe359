from tests.admin.conftest import fast_password_hashing, support_client, support_user  # noqa: F401 - fixtures
