"""Bundles: signed, versioned copies of a project's definitions, their activations, the trusted keys.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_key", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("signer", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connection_map", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bundles"),
    )
    op.create_index("uq_bundles_project_version", "bundles", ["project_key", "version"], unique=True)
    op.create_table(
        "bundle_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_key", sa.String(length=40), nullable=False),
        sa.Column("bundle_id", sa.Integer(), nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name="fk_bundle_activations_bundle_id_bundles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bundle_activations"),
    )
    op.create_index("ix_bundle_activations_project", "bundle_activations", ["project_key", "id"], unique=False)
    op.create_table(
        "trusted_signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trusted_signing_keys"),
        sa.UniqueConstraint("name", name="uq_trusted_signing_keys_name"),
        sa.UniqueConstraint("public_key", name="uq_trusted_signing_keys_public_key"),
    )


def downgrade() -> None:
    op.drop_table("trusted_signing_keys")
    op.drop_index("ix_bundle_activations_project", table_name="bundle_activations")
    op.drop_table("bundle_activations")
    op.drop_index("uq_bundles_project_version", table_name="bundles")
    op.drop_table("bundles")
