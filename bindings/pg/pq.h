/*
** pq.h — libpq, resolved when opsh.pg is first required (engine/dynlib.c says why). Every PQ*
** call in the binding goes through the opsh_pq table; the types come from libpq-fe.h (__typeof__).
*/
#ifndef opsh_pg_pq_h
#define opsh_pg_pq_h

#include <libpq-fe.h>
#include "opsh.h"

#define OPSH_PQ_FUNCS(X) \
  X(PQbackendPID) X(PQcancel) X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectPoll) \
  X(PQconnectStartParams) X(PQconninfoFree) X(PQconninfoParse) X(PQconsumeInput) X(PQdb) \
  X(PQerrorMessage) X(PQescapeIdentifier) X(PQfinish) X(PQflush) X(PQfname) X(PQfreeCancel) \
  X(PQfreemem) X(PQftype) X(PQgetCancel) X(PQgetCopyData) X(PQgetResult) X(PQgetisnull) \
  X(PQgetlength) X(PQgetvalue) X(PQhost) X(PQhostaddr) X(PQisBusy) X(PQlibVersion) X(PQnfields) X(PQnotifies) \
  X(PQntuples) X(PQparameterStatus) X(PQpass) X(PQport) X(PQputCopyData) X(PQputCopyEnd) \
  X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus) X(PQsendQuery) \
  X(PQsendQueryParams) X(PQserverVersion) X(PQsetNoticeReceiver) X(PQsetnonblocking) X(PQsocket) \
  X(PQsslInUse) X(PQstatus) X(PQtransactionStatus) X(PQuser)

#define OPSH_PQ_SLOT(name) __typeof__(name) *name;
struct opsh_pq_api { OPSH_PQ_FUNCS(OPSH_PQ_SLOT) };
extern struct opsh_pq_api opsh_pq;

/* [-0, +0, v] load libpq (once); raises {kind="dependency"} when it cannot */
void opsh_pq_load(lua_State *L);

#ifndef OPSH_PQ_REAL_NAMES
#define PQbackendPID opsh_pq.PQbackendPID
#define PQcancel opsh_pq.PQcancel
#define PQclear opsh_pq.PQclear
#define PQcmdStatus opsh_pq.PQcmdStatus
#define PQcmdTuples opsh_pq.PQcmdTuples
#define PQconnectPoll opsh_pq.PQconnectPoll
#define PQconnectStartParams opsh_pq.PQconnectStartParams
#define PQconninfoFree opsh_pq.PQconninfoFree
#define PQconninfoParse opsh_pq.PQconninfoParse
#define PQconsumeInput opsh_pq.PQconsumeInput
#define PQdb opsh_pq.PQdb
#define PQerrorMessage opsh_pq.PQerrorMessage
#define PQescapeIdentifier opsh_pq.PQescapeIdentifier
#define PQfinish opsh_pq.PQfinish
#define PQflush opsh_pq.PQflush
#define PQfname opsh_pq.PQfname
#define PQfreeCancel opsh_pq.PQfreeCancel
#define PQfreemem opsh_pq.PQfreemem
#define PQftype opsh_pq.PQftype
#define PQgetCancel opsh_pq.PQgetCancel
#define PQgetCopyData opsh_pq.PQgetCopyData
#define PQgetResult opsh_pq.PQgetResult
#define PQgetisnull opsh_pq.PQgetisnull
#define PQgetlength opsh_pq.PQgetlength
#define PQgetvalue opsh_pq.PQgetvalue
#define PQhost opsh_pq.PQhost
#define PQhostaddr opsh_pq.PQhostaddr
#define PQisBusy opsh_pq.PQisBusy
#define PQlibVersion opsh_pq.PQlibVersion
#define PQnfields opsh_pq.PQnfields
#define PQnotifies opsh_pq.PQnotifies
#define PQntuples opsh_pq.PQntuples
#define PQparameterStatus opsh_pq.PQparameterStatus
#define PQpass opsh_pq.PQpass
#define PQport opsh_pq.PQport
#define PQputCopyData opsh_pq.PQputCopyData
#define PQputCopyEnd opsh_pq.PQputCopyEnd
#define PQresultErrorField opsh_pq.PQresultErrorField
#define PQresultErrorMessage opsh_pq.PQresultErrorMessage
#define PQresultStatus opsh_pq.PQresultStatus
#define PQsendQuery opsh_pq.PQsendQuery
#define PQsendQueryParams opsh_pq.PQsendQueryParams
#define PQserverVersion opsh_pq.PQserverVersion
#define PQsetNoticeReceiver opsh_pq.PQsetNoticeReceiver
#define PQsetnonblocking opsh_pq.PQsetnonblocking
#define PQsocket opsh_pq.PQsocket
#define PQsslInUse opsh_pq.PQsslInUse
#define PQstatus opsh_pq.PQstatus
#define PQtransactionStatus opsh_pq.PQtransactionStatus
#define PQuser opsh_pq.PQuser
#endif

#endif
