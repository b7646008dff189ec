import { changedRow, checkEnum, newId, nowIso, type Connection } from './sql'

export const chatRoles = ['system', 'user', 'assistant'] as const
export type ChatRole = (typeof chatRoles)[number]

/** A conversation with a base model, optionally through an adapter. */
export interface ChatSession {
  id: string
  title: string
  modelId: string | null
  adapterId: string | null
  createdAt: string
}

export interface NewChatSession {
  title: string
  modelId: string | null
  adapterId?: string | null
}

export interface ChatMessage {
  id: number
  sessionId: string
  /** 0, 1, 2, … within the session: the order the model saw the turns in. */
  ordering: number
  role: ChatRole
  content: string
  createdAt: string
}

const sessionColumns = 'id, title, model_id AS modelId, adapter_id AS adapterId, created_at AS createdAt'
const messageColumns = 'id, session_id AS sessionId, ordering, role, content, created_at AS createdAt'

export function chatsTable(connection: Connection) {
  const insertSession = connection.prepare<ChatSession, ChatSession>(
    `INSERT INTO chat_sessions (id, title, model_id, adapter_id, created_at)
     VALUES (@id, @title, @modelId, @adapterId, @createdAt)
     RETURNING ${sessionColumns}`,
  )
  const sessionById = connection.prepare<[string], ChatSession>(`SELECT ${sessionColumns} FROM chat_sessions WHERE id = ?`)
  const allSessions = connection.prepare<[], ChatSession>(`SELECT ${sessionColumns} FROM chat_sessions ORDER BY created_at DESC, rowid DESC`)
  const retitle = connection.prepare<[string, string], ChatSession>(`UPDATE chat_sessions SET title = ? WHERE id = ? RETURNING ${sessionColumns}`)
  const removeSession = connection.prepare<[string]>('DELETE FROM chat_sessions WHERE id = ?')
  // The next ordering is computed in the same statement, so two writers cannot take the same one.
  const insertMessage = connection.prepare<Omit<ChatMessage, 'id' | 'ordering'>, ChatMessage>(
    `INSERT INTO chat_messages (session_id, ordering, role, content, created_at)
     VALUES (@sessionId, (SELECT coalesce(max(ordering) + 1, 0) FROM chat_messages WHERE session_id = @sessionId), @role, @content, @createdAt)
     RETURNING ${messageColumns}`,
  )
  const messagesOf = connection.prepare<[string], ChatMessage>(`SELECT ${messageColumns} FROM chat_messages WHERE session_id = ? ORDER BY ordering`)

  return {
    createChatSession(session: NewChatSession): ChatSession {
      return insertSession.get({ id: newId(), title: session.title, modelId: session.modelId, adapterId: session.adapterId ?? null, createdAt: nowIso() })!
    },
    getChatSession: (id: string): ChatSession | undefined => sessionById.get(id),
    /** Newest first. */
    listChatSessions: (): ChatSession[] => allSessions.all(),
    renameChatSession: (id: string, title: string): ChatSession | undefined => retitle.get(title, id),
    /** Its messages go with it. */
    deleteChatSession: (id: string): boolean => changedRow(removeSession.run(id)),

    appendChatMessage(sessionId: string, role: ChatRole, content: string): ChatMessage {
      return insertMessage.get({ sessionId, role: checkEnum(chatRoles, role, 'role'), content, createdAt: nowIso() })!
    },
    /** In conversation order. */
    listChatMessages: (sessionId: string): ChatMessage[] => messagesOf.all(sessionId),
  }
}

export type ChatsTable = ReturnType<typeof chatsTable>
