package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// nfqueueTarget hands a packet to userspace through the xtables NFQUEUE target (revision 3)
// run by nft_compat, for kernels that have xt_NFQUEUE but not the nftables queue expression.
// Its info is struct xt_NFQ_info_v3 {queuenum, queues_total, flags u16}, padded to 8 bytes.
func nfqueueTarget(queueID int, failOpen bool) expr.Any {
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], uint16(queueID))
	binary.NativeEndian.PutUint16(info[2:], 1)
	if failOpen {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
