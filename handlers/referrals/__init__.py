"""Referrals: invite links and the bonus they earn."""
