//! What a portable backup's meta file says: the databases with their retention policies,
//! shards and continuous queries, and the users with their privileges. `influxd restore
//! -portable` imports the databases only; the rest is re-created from what this reads.
//!
//! The file is influxd's `PortableData` protobuf wrapping its whole meta store (`meta.Data`,
//! `services/meta/internal/meta.proto` in influxdb 1.x). Only the fields a seed uses are
//! declared here; prost skips the others. Password hashes are among the skipped: nothing
//! could use them (see `seed/users.rs`), so they are never held in memory here.

use prost::Message as _;

use super::SeedError;

#[derive(Clone, PartialEq, prost::Message)]
struct PortableData {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

/// The meta store, as far as a seed needs it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Meta {
    #[prost(message, repeated, tag = "5")]
    pub databases: Vec<Database>,
    #[prost(message, repeated, tag = "6")]
    pub users: Vec<User>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Database {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub default_retention_policy: String,
    #[prost(message, repeated, tag = "3")]
    pub retention_policies: Vec<RetentionPolicy>,
    #[prost(message, repeated, tag = "4")]
    pub continuous_queries: Vec<ContinuousQuery>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RetentionPolicy {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "4")]
    pub replica_n: u32,
    #[prost(message, repeated, tag = "5")]
    pub shard_groups: Vec<ShardGroup>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ShardGroup {
    /// Nanoseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub start_time: i64,
    #[prost(message, repeated, tag = "5")]
    pub shards: Vec<Shard>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Shard {
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ContinuousQuery {
    #[prost(string, tag = "1")]
    pub name: String,
    /// The whole `CREATE CONTINUOUS QUERY ...` statement, as influxd shows it.
    #[prost(string, tag = "2")]
    pub query: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct User {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bool, tag = "3")]
    pub admin: bool,
    #[prost(message, repeated, tag = "4")]
    pub privileges: Vec<Privilege>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Privilege {
    #[prost(string, tag = "1")]
    pub database: String,
    /// influxql.Privilege: 0 none, 1 read, 2 write, 3 all.
    #[prost(int32, tag = "2")]
    pub privilege: i32,
}

impl Meta {
    /// Decodes a portable backup's `.meta` file.
    pub fn from_file(file: &[u8]) -> Result<Meta, SeedError> {
        let bad = |e: prost::DecodeError| SeedError::Backup(format!("unreadable meta file: {e}"));
        let portable = PortableData::decode(file).map_err(bad)?;
        <Meta as prost::Message>::decode(portable.data.as_slice()).map_err(bad)
    }
}

impl Database {
    /// When the shard group holding shard `id` (an id of the backup's influxd) starts.
    pub fn shard_start(&self, policy: &str, id: u64) -> Option<i64> {
        let rp = self
            .retention_policies
            .iter()
            .find(|rp| rp.name == policy)?;
        let group = rp
            .shard_groups
            .iter()
            .find(|g| g.shards.iter().any(|s| s.id == id))?;
        Some(group.start_time)
    }

    /// How many shards influxd's restore of this database will map: none means it reports
    /// "DB metadata not changed" although it did create the database.
    pub fn shards(&self) -> usize {
        self.retention_policies
            .iter()
            .flat_map(|rp| &rp.shard_groups)
            .map(|g| g.shards.len())
            .sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.meta` file as influxd writes it, for tests: the meta store wrapped in
    /// `PortableData`, with a field this module does not declare (a user's hash).
    pub fn encode(meta: &Meta) -> Vec<u8> {
        let mut data = meta.encode_to_vec();
        // UserInfo.Hash (2) inside Data.Users (6): skipped on decode.
        let hash = User {
            name: "x".into(),
            ..Default::default()
        };
        let mut with_hash = hash.encode_to_vec();
        with_hash.extend_from_slice(&[0x12, 3, b'$', b'2', b'a']);
        data.push(0x32);
        data.push(with_hash.len() as u8);
        data.extend_from_slice(&with_hash);
        PortableData { data }.encode_to_vec()
    }

    #[test]
    fn decodes_what_it_declares_and_skips_the_rest() {
        let meta = Meta {
            databases: vec![Database {
                name: "db1".into(),
                default_retention_policy: "hot".into(),
                retention_policies: vec![RetentionPolicy {
                    name: "hot".into(),
                    replica_n: 1,
                    shard_groups: vec![ShardGroup {
                        start_time: -3600,
                        shards: vec![Shard { id: 4 }, Shard { id: 5 }],
                    }],
                }],
                continuous_queries: vec![ContinuousQuery {
                    name: "cq".into(),
                    query: "CREATE CONTINUOUS QUERY cq ON db1 BEGIN SELECT 1 END".into(),
                }],
            }],
            users: vec![User {
                name: "reader".into(),
                admin: false,
                privileges: vec![Privilege {
                    database: "db1".into(),
                    privilege: 1,
                }],
            }],
        };
        let decoded = Meta::from_file(&encode(&meta)).unwrap();
        assert_eq!(decoded.databases, meta.databases);
        assert_eq!(decoded.databases[0].shards(), 2);
        assert_eq!(decoded.databases[0].shard_start("hot", 5), Some(-3600));
        assert_eq!(decoded.databases[0].shard_start("hot", 6), None);
        assert_eq!(decoded.users.len(), 2);
        assert_eq!(decoded.users[0], meta.users[0]);
        assert_eq!(decoded.users[1].name, "x");
    }

    #[test]
    fn garbage_is_a_backup_error() {
        let r = Meta::from_file(&[0xff, 0xff, 0xff]);
        assert!(matches!(r, Err(SeedError::Backup(_))), "{r:?}");
    }
}
