"""Runs record what started them and their wave; products keep their triggers' state (docs/adr/0021)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('onboarding', '0004_issue12_keys'),
        ('provisioning', '0008_usage'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='TriggerState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('config_version', models.PositiveIntegerField(blank=True, help_text='the approved version read', null=True)),
                ('schedule', models.CharField(blank=True, help_text='cron, UTC; empty: none', max_length=100)),
                ('on_file', models.BooleanField(default=False)),
                ('on_upstream', models.JSONField(blank=True, default=list, help_text='slugs whose successful runs start one here')),
                ('next_run', models.DateTimeField(blank=True, db_index=True, help_text='the next scheduled slot', null=True)),
                ('schedule_slot', models.DateTimeField(blank=True, help_text='the last scheduled slot started', null=True)),
                ('raw_seen', models.JSONField(blank=True, default=dict, help_text='raw/ when last looked at: {path: [mtime_ns, size]}')),
                ('raw_changed_at', models.DateTimeField(blank=True, help_text='when raw/ was last seen to change', null=True)),
                ('raw_pending', models.BooleanField(default=False, help_text='files arrived that no run has started for yet')),
            ],
        ),
        migrations.AddField(
            model_name='run',
            name='chained_at',
            field=models.DateTimeField(blank=True, help_text='when its end was handed on to the products that run after it', null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='stopped_chain',
            field=models.JSONField(blank=True, default=list, help_text='products of its wave that got no run because this one failed'),
        ),
        migrations.AddField(
            model_name='run',
            name='trigger',
            field=models.CharField(default='manual', max_length=120),
        ),
        migrations.AddField(
            model_name='run',
            name='wave',
            field=models.BigIntegerField(blank=True, db_index=True, null=True),
        ),
        # Runs from before: each its own wave, and those that ended handed on already (nothing to start).
        migrations.RunSQL(
            "UPDATE provisioning_run SET wave = id, "
            "chained_at = CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN COALESCE(finished_at, now()) END",
            migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('chained_at__isnull', True)), fields=['finished_at'], name='run_not_chained'),
        ),
        migrations.AddConstraint(
            model_name='run',
            constraint=models.UniqueConstraint(condition=models.Q(('trigger__startswith', 'upstream:')), fields=('product', 'wave'), name='one_upstream_run_per_product_and_wave'),
        ),
        migrations.AddField(
            model_name='triggerstate',
            name='product',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='trigger_state', to='onboarding.product'),
        ),
        migrations.AddIndex(
            model_name='triggerstate',
            index=models.Index(condition=models.Q(('on_file', True)), fields=['on_file'], name='trigger_watching'),
        ),
    ]
