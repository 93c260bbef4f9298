"""Re-export of the authentication providers (``control_plane.auth``)."""

from control_plane.auth import (
    HmacProvider,
    Identity,
    OidcProvider,
    PassthroughProvider,
    mint_hmac_token,
)

__all__ = ["HmacProvider", "Identity", "OidcProvider", "PassthroughProvider", "mint_hmac_token"]
