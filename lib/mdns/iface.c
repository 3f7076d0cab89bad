/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* The interfaces mDNS runs on (up, multicast, not loopback, with their IPv4 addresses) and the
 * socket calls the querier and the responder share. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <string.h>
#include <sys/socket.h>

#include "base.h"
#include "mdns_internal.h"

static struct mdns_iface *find_or_add(struct mdns_iface *out, size_t cap, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(out[i].name, name))
            return &out[i];
    if (*n == cap || strlen(name) >= IF_NAMESIZE)
        return NULL;
    unsigned index = if_nametoindex(name);
    if (index == 0)
        return NULL;
    struct mdns_iface *i = &out[(*n)++];
    *i = (struct mdns_iface){.index = index};
    strcpy(i->name, name);
    return i;
}

int mdns_ifaces(const char *name, struct mdns_iface *out, size_t cap, size_t *n)
{
    struct ifaddrs *all, *ifa;
    bool seen = false;

    *n = 0;
    if (getifaddrs(&all) < 0)
        return log_error_errno(-errno, "mdns: cannot list the network interfaces: %m");
    for (ifa = all; ifa; ifa = ifa->ifa_next) {
        unsigned flags = ifa->ifa_flags;
        if (name && strcmp(ifa->ifa_name, name))
            continue;
        seen = true;
        if (!(flags & IFF_UP) || !(flags & IFF_MULTICAST) || (flags & IFF_LOOPBACK))
            continue;
        struct mdns_iface *i = find_or_add(out, cap, n, ifa->ifa_name);
        if (!i || !ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || i->n_v4 == MDNS_MAX_IFADDRS)
            continue;
        memcpy(i->v4[i->n_v4], &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, 4);
        if (ifa->ifa_netmask)
            memcpy(i->mask[i->n_v4], &((struct sockaddr_in *)ifa->ifa_netmask)->sin_addr, 4);
        else
            memset(i->mask[i->n_v4], 0xff, 4);
        i->n_v4++;
    }
    freeifaddrs(all);
    if (name && !seen)
        return -ENODEV;
    if (name && *n == 0)
        return -EADDRNOTAVAIL;
    return 0;
}

bool mdns_iface_on_link(const struct mdns_iface *i, const uint8_t addr[4])
{
    for (size_t k = 0; k < i->n_v4; k++) {
        bool same = true;
        for (int b = 0; b < 4; b++)
            same = same && (i->v4[k][b] & i->mask[k][b]) == (addr[b] & i->mask[k][b]);
        if (same)
            return true;
    }
    return false;
}

struct sockaddr_in mdns_group(void)
{
    struct sockaddr_in g = {.sin_family = AF_INET, .sin_port = htons(MDNS_PORT)};
    inet_pton(AF_INET, MDNS_GROUP_V4, &g.sin_addr);
    return g;
}

int mdns_set_int(int fd, int level, int opt, int value) { return setsockopt(fd, level, opt, &value, sizeof(value)); }

int mdns_join(int fd, unsigned ifindex)
{
    struct ip_mreqn m = {.imr_multiaddr = mdns_group().sin_addr, .imr_ifindex = (int)ifindex};
    return setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) == 0 || errno == EADDRINUSE ? 0 : -errno;
}

int mdns_send_group(int fd, unsigned ifindex, const uint8_t *pkt, size_t len)
{
    struct sockaddr_in group = mdns_group();
    struct ip_mreqn m = {.imr_ifindex = (int)ifindex};
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)) < 0 ||
        sendto(fd, pkt, len, 0, (const struct sockaddr *)&group, sizeof(group)) < 0)
        return -errno;
    return 0;
}

ssize_t mdns_recv(int fd, uint8_t *buf, size_t cap, struct sockaddr_in *from, unsigned *ifindex, struct in_addr *dst)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct in_pktinfo))];
    } control;
    struct iovec iov = {buf, cap};
    struct msghdr m = {.msg_name = from,
                       .msg_namelen = sizeof(*from),
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = &control,
                       .msg_controllen = sizeof(control)};
    struct in_pktinfo info = {0};
    ssize_t n = recvmsg(fd, &m, 0);

    if (n < 0)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO)
            memcpy(&info, CMSG_DATA(cm), sizeof(info));
    *ifindex = info.ipi_ifindex > 0 ? (unsigned)info.ipi_ifindex : 0;
    *dst = info.ipi_addr;
    return (m.msg_flags & MSG_TRUNC) || *ifindex == 0 ? 0 : n;
}

int mdns_send_to(int fd, unsigned ifindex, const struct sockaddr_in *to, const uint8_t *pkt, size_t len)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct in_pktinfo))];
    } control = {0};
    struct iovec iov = {(void *)pkt, len};
    struct msghdr m = {.msg_name = (void *)to,
                       .msg_namelen = sizeof(*to),
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = &control,
                       .msg_controllen = sizeof(control)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    ((struct in_pktinfo *)(void *)CMSG_DATA(cm))->ipi_ifindex = (int)ifindex;
    return sendmsg(fd, &m, 0) < 0 ? -errno : 0;
}

bool mdns_source_ok(const struct mdns_iface *ifaces, size_t n, unsigned ifindex, const uint8_t addr[4], uint16_t port)
{
    if (port != MDNS_PORT)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ifaces[i].index == ifindex && mdns_iface_on_link(&ifaces[i], addr))
            return true;
        for (size_t k = 0; k < ifaces[i].n_v4; k++)
            if (!memcmp(ifaces[i].v4[k], addr, 4))
                return true;
    }
    return false;
}
