//! The FUSE operations, answered from the inode table and the content reads.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use fuser::{
    FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyXattr, Request,
};

use cairn_format::NodeType;

use crate::tree::{Fs, Kind};

impl Filesystem for Fs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let children = match self.children(parent) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        match children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, ino)| self.attr(*ino))
        {
            Some((attr, ttl)) => reply.entry(&ttl, &attr, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some((attr, ttl)) => reply.attr(&ttl, &attr),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inodes.get(ino as usize).map(|i| &i.kind) {
            Some(Kind::Latest(t)) => reply.data(t),
            Some(Kind::Node(n)) if n.node_type == NodeType::Symlink => reply.data(&n.link_target.0),
            _ => reply.error(libc::EINVAL),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        match self.read_range(ino, offset.max(0) as u64, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(ino) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (OsString::from("."), ino, FileType::Directory),
            (OsString::from(".."), ino, FileType::Directory),
        ];
        for (name, child) in children {
            let kind = self
                .attr(child)
                .map_or(FileType::RegularFile, |(a, _)| a.kind);
            entries.push((name, child, kind));
        }
        for (i, (name, child, kind)) in entries.into_iter().enumerate().skip(offset.max(0) as usize)
        {
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(libc::ENODATA);
        };
        match node.xattrs.iter().find(|x| x.name.0 == name.as_bytes()) {
            None => reply.error(libc::ENODATA),
            Some(x) if size == 0 => reply.size(x.value.0.len() as u32),
            Some(x) if x.value.0.len() > size as usize => reply.error(libc::ERANGE),
            Some(x) => reply.data(&x.value.0),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let mut list = Vec::new();
        if let Some(node) = self.node(ino) {
            for x in &node.xattrs {
                list.extend_from_slice(&x.name.0);
                list.push(0);
            }
        }
        if size == 0 {
            reply.size(list.len() as u32);
        } else if list.len() > size as usize {
            reply.error(libc::ERANGE);
        } else {
            reply.data(&list);
        }
    }
}
