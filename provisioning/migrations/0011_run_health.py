import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('onboarding', '0003_approved_version'),
        ('provisioning', '0010_ingestion_sources'),
    ]

    operations = [
        migrations.CreateModel(
            name='PortMeasurement',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('kind', models.CharField(help_text='table or feed', max_length=10)),
                ('rows', models.BigIntegerField(blank=True, help_text="the table's rows, or the feed's CSV rows; empty when it does not exist", null=True)),
                ('files', models.PositiveIntegerField(blank=True, help_text="a feed's files", null=True)),
                ('newest_at', models.DateTimeField(blank=True, help_text="a feed's newest file", null=True)),
                ('write_mark', models.CharField(blank=True, help_text="a table's oid and the warehouse's count of its rows inserted, updated and deleted: when it moves, the run wrote the table", max_length=60)),
                ('updated_at', models.DateTimeField(blank=True, help_text="its data's last update as far as known after this run: the end of the last succeeded run that wrote the table, the feed's newest file", null=True)),
                ('checks', models.JSONField(blank=True, default=list, help_text='[{check, passed, detail}]')),
                ('measured_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='port_measurements', to='onboarding.product')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='measurements', to='provisioning.run')),
            ],
            options={
                'ordering': ['-measured_at', '-id'],
                'indexes': [models.Index(fields=['product', 'name', '-measured_at'], name='measurement_latest')],
                'constraints': [models.UniqueConstraint(fields=('run', 'name'), name='one_measurement_per_run_and_port')],
            },
        ),
        migrations.CreateModel(
            name='ProductHealth',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('ok', 'Ok'), ('stale', 'Stale'), ('failing', 'Failing')], db_index=True, default='ok', max_length=10)),
                ('since', models.DateTimeField(default=django.utils.timezone.now, help_text='when it entered this state')),
                ('reasons', models.JSONField(blank=True, default=list, help_text='why it is stale or failing, one line each')),
                ('evaluated_at', models.DateTimeField(blank=True, null=True)),
                ('due_at', models.DateTimeField(blank=True, db_index=True, help_text='when an output may turn stale: beat evaluates it again then', null=True)),
                ('last_run', models.ForeignKey(blank=True, help_text='the newest run whose ports were measured', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='provisioning.run')),
                ('product', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='health', to='onboarding.product')),
            ],
        ),
    ]
