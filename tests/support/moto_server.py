"""moto server, as the tests run it: moto 5.2.5 with nine gaps filled where
it differs from AWS in ways that matter to fastcart.

- DeleteCacheSubnetGroup is not implemented in moto 5.2.5 (it answers 500);
  AWS deletes the group. Added here.
- DeleteReplicationGroup leaves the group in "deleting" forever in moto; AWS
  removes it after a while. Here it is removed at once (the answer still says
  "deleting", as AWS's does).
- CreateReplicationGroup ignores NumCacheClusters in moto 5.2.5 (one node
  whatever it says, unless ReplicasPerNodeGroup is given); AWS makes that many
  nodes. Honoured here.
- An ECS service never reaches a steady state in moto 5.2.5 (no task runs:
  runningCount 0, its deployment IN_PROGRESS forever); on AWS, with an image
  to run, it does. Here its tasks are running at once and its deployment is
  COMPLETED, so the driver's real steady-state check passes.
- CreateDBCluster with the identifier of a cluster that exists replaces
  that cluster in moto 5.2.5; AWS refuses with DBClusterAlreadyExistsFault
  (which is how a create whose answer was lost finds its cluster again).
  Refused here.
- ModifyDBCluster ignores CloudwatchLogsExportConfiguration in moto 5.2.5
  (it looks for the log types under another parameter's name); AWS turns the
  log exports on and off. Honoured here.
- A DB instance's maintenance window that starts when its backup window
  ends (backups 03:00-04:00, maintenance mon:04:00-mon:05:00, as FastCart's
  Pulumi program has them) is refused as overlapping in moto 5.2.5, which
  counts touching windows as an overlap of 0 seconds. AWS's API reference
  asks only that the windows do not conflict, and touching windows are
  applied on AWS (terraform-aws-modules' RDS examples run exactly such a
  pair). Here only windows that share time are refused.
- CreateStream ignores its Tags in moto 5.2.5; AWS tags the stream
  atomically with its creation (which is what lets an apply killed right after
  a create find the stream by its ownership tags). Honoured here.
- A conditional PutObject (If-None-Match, If-Match) checks the condition and
  writes the object in two steps in moto 5.2.5, and moto server answers
  requests on many threads, so two writes sent at the same moment can both
  pass the check; on AWS exactly one succeeds. Here S3 PutObject requests
  run one at a time, so the check and the write are one step.

Nothing else changes: every other request is moto's own. fastcart's drivers
make the same calls against AWS.

Run: python moto_server.py -H 127.0.0.1 -p PORT (the same arguments as moto_server).
"""

from moto.core.responses import EmptyResult
from moto.elasticache.exceptions import CacheSubnetGroupNotFound
from moto.elasticache.models import ElastiCacheBackend, ReplicationGroup
from moto.elasticache.responses import ElastiCacheResponse
from moto.ecs.models import Service
from moto.kinesis.responses import KinesisResponse
from moto.rds.exceptions import RDSClientError
from moto.rds import models as rds_models
from moto.rds.models import RDSBackend
from moto.s3.responses import S3Response
from moto.server import main
import threading


def _backend_delete_cache_subnet_group(self, name):
    group = self.cache_subnet_groups.pop(name, None)
    if group is None:
        raise CacheSubnetGroupNotFound(name)
    self.tagging_service.delete_all_tags_for_resource(group.arn)


def _response_delete_cache_subnet_group(self):
    self.elasticache_backend.delete_cache_subnet_group(self._get_param("CacheSubnetGroupName"))
    return EmptyResult()


_moto_delete_replication_group = ElastiCacheBackend.delete_replication_group


def _delete_replication_group(self, replication_group_id, retain_primary_cluster):
    group = _moto_delete_replication_group(self, replication_group_id, retain_primary_cluster)
    self.replication_groups.pop(replication_group_id, None)
    self.tagging_service.delete_all_tags_for_resource(group.arn)
    return group


_moto_create_stream = KinesisResponse.create_stream


def _create_stream(self):
    result = _moto_create_stream(self)
    tags = self._get_param("Tags") or {}
    if tags:
        self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
    return result


_moto_members = ReplicationGroup._set_node_members_clusters_disabled


def _members(self, *args, **kwargs):
    n = kwargs.get("num_cache_clusters")
    if n and not kwargs.get("replicas_per_node_group"):
        kwargs["replicas_per_node_group"] = n - 1
    return _moto_members(self, *args, **kwargs)


ReplicationGroup._set_node_members_clusters_disabled = _members

_moto_service_init = Service.__init__


def _service_init(self, *args, **kwargs):
    _moto_service_init(self, *args, **kwargs)
    self.running_count = self.desired_count
    self.pending_count = 0
    for d in self.deployments:
        d["runningCount"] = self.desired_count
        d["pendingCount"] = 0
        d["rolloutState"] = "COMPLETED"
        d["rolloutStateReason"] = f"ECS deployment {d['id']} completed."


_moto_create_db_cluster = RDSBackend.create_db_cluster


def _create_db_cluster(self, kwargs):
    if kwargs["db_cluster_identifier"] in self.clusters:
        raise RDSClientError("DBClusterAlreadyExistsFault", "DB cluster already exists")
    return _moto_create_db_cluster(self, kwargs)


_moto_modify_db_cluster = RDSBackend.modify_db_cluster


def _modify_db_cluster(self, kwargs):
    exports = kwargs.pop("cloudwatch_logs_export_configuration", None)
    if exports:
        kwargs["enable_cloudwatch_logs_exports"] = exports
    return _moto_modify_db_cluster(self, kwargs)


_moto_window_check = rds_models.valid_preferred_maintenance_window


def _minutes(hhmm):
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _daily_spans(start, end):
    """A window on a 24-hour clock as spans of minutes that do not wrap."""
    return [(start, end)] if end > start else [(start, 24 * 60), (0, end)]


def _windows_share_time(maintenance, backup):
    # The backup window recurs daily: compare times of day only.
    m = _daily_spans(_minutes(maintenance[4:9]), _minutes(maintenance[14:19]))
    b = _daily_spans(*(_minutes(t) for t in backup.split("-")))
    return any(min(e1, e2) > max(s1, s2) for s1, e1 in m for s2, e2 in b)


def _window_check(maintenance, backup):
    message = _moto_window_check(maintenance, backup)
    if message and "must not overlap" in message and not _windows_share_time(maintenance.lower(), backup):
        # Touching, not overlapping: moto's other checks of the window alone.
        return _moto_window_check(maintenance, None)
    return message


_s3_puts = threading.Lock()
_moto_put_object = S3Response.put_object


def _put_object(self):
    with _s3_puts:
        return _moto_put_object(self)


S3Response.put_object = _put_object
rds_models.valid_preferred_maintenance_window = _window_check
RDSBackend.create_db_cluster = _create_db_cluster
RDSBackend.modify_db_cluster = _modify_db_cluster
Service.__init__ = _service_init
KinesisResponse.create_stream = _create_stream
ElastiCacheBackend.delete_cache_subnet_group = _backend_delete_cache_subnet_group
ElastiCacheResponse.delete_cache_subnet_group = _response_delete_cache_subnet_group
ElastiCacheBackend.delete_replication_group = _delete_replication_group

if __name__ == "__main__":
    main()
